"""Pollers: how each stands, run now, backfill a window, pause and resume; every action audited.

``run_job`` and ``backfill_job`` check a request, write it to the audit trail and return the run:
``saleshub poll run`` and ``saleshub poll backfill`` call it at once; the operator API and the
console start it on a background thread (``start_in_background``) and answer at once. The run's
progress and outcome are read back from ``poll_runs`` and the feed's cursors (``poller_overview``,
the rows of ``saleshub poll status``), so any web worker can answer for a run another one started.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import Connection, Engine

from adapters.source import Window
from saleshub.errors import InvalidRequestError
from saleshub.receive.polling import PageProgress, RunResult, build_poller
from saleshub.runtime import HubRuntime
from saleshub.store import polling as store
from saleshub.store.audit import Actor, record_action
from saleshub.store.failures import database_errors

__all__ = [
    "RECENT_RUNS",
    "PollerView",
    "backfill_job",
    "check_window",
    "pause_poller",
    "poller_overview",
    "resume_poller",
    "run_job",
    "start_in_background",
]

log = logging.getLogger(__name__)

#: How many of a system's newest runs the overview looks at (for interrupted ones).
RECENT_RUNS = 10


@dataclass(frozen=True, slots=True)
class PollerView:
    """One polled system as ``saleshub poll status`` shows it."""

    system: str
    state: store.PollerState
    cursor: store.CursorRow | None
    backfill: store.CursorRow | None
    runs: list[store.PollRun]
    #: whether some process holds the newest run's feed lock now (an open run is then running)
    running: bool

    def lag_seconds(self, now: datetime | None = None) -> float | None:
        """Seconds since a run last read the incremental feed to its end (``None``: never)."""
        if self.cursor is None or self.cursor.caught_up_at is None:
            return None
        return ((now or datetime.now(UTC)) - self.cursor.caught_up_at).total_seconds()


def poller_overview(conn: Connection, systems: Sequence[str]) -> list[PollerView]:
    """Every system of ``systems`` and every one with a stored state, sorted by name."""
    states = store.poller_states(conn)
    views = []
    for system in sorted(set(systems) | set(states)):
        runs = store.last_runs(conn, system, RECENT_RUNS)
        views.append(
            PollerView(
                system=system,
                state=states.get(system, store.PollerState(system)),
                cursor=store.load_cursor(conn, system, "incremental"),
                backfill=store.load_cursor(conn, system, "backfill"),
                runs=runs,
                running=bool(runs) and store.is_locked(conn, system, runs[0].stream),
            )
        )
    return views


def run_job(
    hub: HubRuntime, system: str, actor: Actor, *, force: bool = False, started_by: str = "command"
) -> Callable[[], RunResult]:
    """Check and audit a run of ``system``'s incremental feed to its end (``force``: also when
    paused); the run itself, to call here (``saleshub poll run``) or on a thread (``start_in_background``).
    """
    poller = build_poller(hub, system)
    with database_errors(), hub.database.engine.begin() as conn:
        record_action(conn, actor, "pollers.run", "poller", system, None, {"force": force})
    return partial(poller.run, force=force, started_by=started_by)


def check_window(window: Window) -> None:
    """``InvalidRequestError`` unless ``window`` has a start and ends (if it ends) after it."""
    if window.since is None:
        raise InvalidRequestError("a backfill needs the start of its window (since)")
    if window.until is not None and window.until <= window.since:
        raise InvalidRequestError("the end of a backfill window (until) must come after its start (since)")


def backfill_job(
    hub: HubRuntime,
    system: str,
    window: Window,
    actor: Actor,
    *,
    on_page: Callable[[PageProgress], None] | None = None,
    started_by: str = "command",
) -> Callable[[], RunResult]:
    """Check and audit a backfill of every order ``system`` changed in ``window`` (on the backfill
    cursor, resumable); the run itself, to call here (``saleshub poll backfill``) or on a thread.
    """
    check_window(window)
    poller = build_poller(hub, system)
    assert window.since is not None
    detail = {"since": window.since.isoformat(), "until": window.until.isoformat() if window.until else None}
    with database_errors(), hub.database.engine.begin() as conn:
        record_action(conn, actor, "pollers.backfill", "poller", system, None, detail)
    return partial(poller.run, stream="backfill", window=window, on_page=on_page, started_by=started_by)


def start_in_background(name: str, job: Callable[[], RunResult]) -> threading.Thread:
    """Run ``job`` (from ``run_job`` or ``backfill_job``) on its own thread.

    A run never raises for a source's or the database's failure (its outcome is stored in
    ``poll_runs``); anything else is logged with its traceback, for the run is nobody's request now.
    """

    def work() -> None:
        try:
            result = job()
        except Exception:  # the thread's end: logged with the traceback for the operators
            log.exception("%s stopped with an error", name)
            return
        log.info("%s: %s, %d pages, %d orders", name, result.outcome, result.pages, result.orders)

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    return thread


def pause_poller(engine: Engine, system: str, reason: str, actor: Actor) -> None:
    """Stop ``system``'s scheduled runs until resumed, saying why."""
    with database_errors(), engine.begin() as conn:
        store.pause(conn, system, reason)
        record_action(conn, actor, "pollers.pause", "poller", system, reason)


def resume_poller(engine: Engine, system: str, actor: Actor) -> None:
    """Restart ``system``'s scheduled runs and forget its failures in a row."""
    with database_errors(), engine.begin() as conn:
        store.resume(conn, system)
        record_action(conn, actor, "pollers.resume", "poller", system)
