"""The pollers' SQL: cursors, runs, each system's state, and the lock that keeps one poller per feed.

* ``try_lock``/``unlock``: a session-level PostgreSQL advisory lock per system and stream, held by the
  polling process for a whole run on a connection of its own; a second process (another hub) finds
  it taken and skips its run. A process that dies loses its session, and with it the lock;
  ``is_locked`` tells (without taking it) whether a run's process is still there.
* ``load_cursor``/``save_cursor``: where a feed stands; ``save_cursor`` runs in the caller's
  transaction, the one that records the page's events, so the two commit together or not at all.
* ``start_run``/``progress_run``/``finish_run``: one ``poll_runs`` row per run;
  ``close_interrupted_runs``: a run still open when the next run holds the feed's lock lost its
  process (a SIGKILL, a crash, a lost host) and is closed as ``interrupted``.
* ``run_failed``/``run_succeeded``/``pause``/``resume``/``set_next_run``/``poller_states``: the
  per-system state ``saleshub poll status`` shows; ``run_failed`` pauses a system after
  ``pause_after`` failed runs in a row.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from saleshub.store.tables import poll_cursors, poll_runs, poller_state

__all__ = [
    "INTERRUPTED",
    "CursorRow",
    "PollRun",
    "PollerState",
    "Stream",
    "close_interrupted_runs",
    "finish_run",
    "is_locked",
    "last_runs",
    "load_cursor",
    "pause",
    "poller_states",
    "progress_run",
    "resume",
    "run_failed",
    "run_succeeded",
    "save_cursor",
    "set_next_run",
    "start_run",
    "try_lock",
    "unlock",
]

Stream = Literal["incremental", "backfill"]

#: The outcome of a run whose process ended before it closed the run.
INTERRUPTED = "interrupted"

#: First key of the two-key advisory locks the pollers take (the second: crc32 of system:stream).
_LOCK_CLASS = 0x5A1E5


@dataclass(frozen=True, slots=True)
class CursorRow:
    """A stored feed position (texts as the source wrote them) and what was read to get there."""

    updated_at: str | None = None
    tie: str | None = None
    token: str | None = None
    window_since: datetime | None = None
    window_until: datetime | None = None
    pages: int = 0
    records: int = 0
    caught_up_at: datetime | None = None
    finished_at: datetime | None = None
    advanced_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PollerState:
    """A polled system's failures in a row, pause, last error and next scheduled run."""

    system: str
    failures: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    paused_at: datetime | None = None
    paused_reason: str | None = None
    next_run_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PollRun:
    """One row of ``poll_runs``."""

    run_id: uuid.UUID
    system: str
    stream: Stream
    started_by: str
    started_at: datetime
    finished_at: datetime | None
    pages: int
    orders: int
    recorded: int
    errors: int
    outcome: str | None
    error: str | None


def _lock_key(system: str, stream: Stream) -> int:
    return zlib.crc32(f"{system}:{stream}".encode()) - (1 << 31)  # a signed int4


def try_lock(conn: Connection, system: str, stream: Stream) -> bool:
    """Take the feed's advisory lock for ``conn``'s session; ``False`` if another session holds it."""
    taken = conn.execute(
        text("SELECT pg_try_advisory_lock(:c, :k)"), {"c": _LOCK_CLASS, "k": _lock_key(system, stream)}
    ).scalar_one()
    conn.commit()  # the lock is the session's; nothing else of this connection stays open
    return bool(taken)


def is_locked(conn: Connection, system: str, stream: Stream) -> bool:
    """Whether some session holds the feed's advisory lock (read from ``pg_locks``; takes nothing)."""
    held = conn.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = :c AND objid = :o AND objsubid = 2)"
        ),
        {"c": _LOCK_CLASS, "o": _lock_key(system, stream) & 0xFFFFFFFF},  # pg_locks shows oids
    ).scalar_one()
    return bool(held)


def unlock(conn: Connection, system: str, stream: Stream) -> None:
    """Release the feed's advisory lock held by ``conn``'s session."""
    conn.execute(
        text("SELECT pg_advisory_unlock(:c, :k)"), {"c": _LOCK_CLASS, "k": _lock_key(system, stream)}
    )
    conn.commit()


_C = poll_cursors.c


def load_cursor(conn: Connection, system: str, stream: Stream) -> CursorRow | None:
    """The stored position of ``system``'s ``stream``, or ``None`` before its first page."""
    row = conn.execute(
        select(
            _C.updated_at,
            _C.tie,
            _C.token,
            _C.window_since,
            _C.window_until,
            _C.pages,
            _C.records,
            _C.caught_up_at,
            _C.finished_at,
            _C.advanced_at,
        ).where(_C.source_system == system, _C.stream == stream)
    ).one_or_none()
    return CursorRow(**row._asdict()) if row is not None else None


def save_cursor(
    conn: Connection,
    system: str,
    stream: Stream,
    cursor: CursorRow,
    *,
    caught_up: bool = False,
    finished: bool = False,
) -> None:
    """Store ``cursor`` in ``conn``'s transaction (the one recording the page that led there).

    ``caught_up``: the page was the feed's last for now; ``finished``: a backfill read its window.
    """
    values = {
        "updated_at": cursor.updated_at,
        "tie": cursor.tie,
        "token": cursor.token,
        "window_since": cursor.window_since,
        "window_until": cursor.window_until,
        "pages": cursor.pages,
        "records": cursor.records,
        "finished_at": func.now() if finished else None,
        "advanced_at": func.now(),
    }
    if caught_up:
        values["caught_up_at"] = func.now()
    statement = insert(poll_cursors).values(source_system=system, stream=stream, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=[_C.source_system, _C.stream], set_=values))


_R = poll_runs.c


def start_run(conn: Connection, system: str, stream: Stream, started_by: str) -> uuid.UUID:
    """A new ``poll_runs`` row; its id."""
    run_id = uuid.uuid4()
    conn.execute(
        poll_runs.insert().values(
            run_id=run_id, source_system=system, stream=stream, started_by=started_by, started_at=func.now()
        )
    )
    return run_id


def progress_run(
    conn: Connection, run_id: uuid.UUID, *, pages: int, orders: int, recorded: int, errors: int
) -> None:
    """Set the run's counters (in the transaction of the page that brought them there)."""
    conn.execute(
        update(poll_runs)
        .where(_R.run_id == run_id)
        .values(pages=pages, orders=orders, recorded=recorded, errors=errors)
    )


def finish_run(conn: Connection, run_id: uuid.UUID, outcome: str, error: str | None = None) -> None:
    """Close the run: ``completed``, ``failed`` (with ``error``) or ``stopped``."""
    conn.execute(
        update(poll_runs)
        .where(_R.run_id == run_id)
        .values(finished_at=func.now(), outcome=outcome, error=error)
    )


def close_interrupted_runs(conn: Connection, system: str, stream: Stream) -> int:
    """Close the feed's open runs as ``interrupted``; how many. Only with the feed's lock held.

    Holding the lock proves that no live process runs the feed, so an open run's process is gone.
    """
    closed = conn.execute(
        update(poll_runs)
        .where(_R.source_system == system, _R.stream == stream, _R.outcome.is_(None))
        .values(
            finished_at=func.now(),
            outcome=INTERRUPTED,
            error="its process ended before the run finished; found by the next run",
        )
    )
    return closed.rowcount


def last_runs(conn: Connection, system: str, limit: int = 1) -> list[PollRun]:
    """The newest runs of ``system``, newest first."""
    rows = conn.execute(
        select(
            _R.run_id,
            _R.source_system.label("system"),
            _R.stream,
            _R.started_by,
            _R.started_at,
            _R.finished_at,
            _R.pages,
            _R.orders,
            _R.recorded,
            _R.errors,
            _R.outcome,
            _R.error,
        )
        .where(_R.source_system == system)
        .order_by(_R.started_at.desc())
        .limit(limit)
    ).all()
    return [PollRun(**row._asdict()) for row in rows]


_S = poller_state.c


def _upsert_state(conn: Connection, system: str, **values: object) -> None:
    statement = insert(poller_state).values(source_system=system, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=[_S.source_system], set_=values))


def run_succeeded(conn: Connection, system: str) -> None:
    """A run completed: no failures in a row any more, and no pause (an operator's forced run)."""
    _upsert_state(conn, system, failures=0, paused_at=None, paused_reason=None)


def run_failed(
    conn: Connection, system: str, error: str, *, pause_after: int, pause_now: bool = False
) -> bool:
    """Count a failed run; pause the system after ``pause_after`` in a row (or at once). Paused?"""
    statement = insert(poller_state).values(
        source_system=system, failures=1, last_error=error, last_error_at=func.now()
    )
    failures = conn.execute(
        statement.on_conflict_do_update(
            index_elements=[_S.source_system],
            set_={"failures": _S.failures + 1, "last_error": error, "last_error_at": func.now()},
        ).returning(_S.failures)
    ).scalar_one()
    if pause_now or failures >= pause_after:
        why = "refused the request" if pause_now else f"{failures} failed runs in a row"
        pause(conn, system, f"{why}; last error: {error}")
        return True
    return False


def pause(conn: Connection, system: str, reason: str) -> None:
    """Pause the system's scheduled runs, saying why (kept until ``resume``)."""
    _upsert_state(conn, system, paused_at=func.now(), paused_reason=reason)


def resume(conn: Connection, system: str) -> None:
    """Lift a pause and forget the failures in a row."""
    _upsert_state(conn, system, paused_at=None, paused_reason=None, failures=0)


def set_next_run(conn: Connection, system: str, at: datetime | None) -> None:
    """When the scheduler will next run ``system``."""
    _upsert_state(conn, system, next_run_at=at)


def poller_states(conn: Connection, systems: Sequence[str] | None = None) -> dict[str, PollerState]:
    """The state of every system that has one (or of ``systems``)."""
    query = select(
        _S.source_system.label("system"),
        _S.failures,
        _S.last_error,
        _S.last_error_at,
        _S.paused_at,
        _S.paused_reason,
        _S.next_run_at,
    )
    if systems is not None:
        query = query.where(_S.source_system.in_(list(systems)))
    return {row.system: PollerState(**row._asdict()) for row in conn.execute(query)}
