"""A reconciliation run's row around its work: written first, completed by the work, failed on error.

Both kinds of run (a source's manifest against the hub, ``engine``; the cross-system run,
``across``) open and close their row the same way, here: the row is written and committed first
(status ``running``), so a run that never ends is visible; the work runs in one transaction; if it
raises — or a stop signal unwinds it — the transaction rolls back and the row is marked ``failed``
with the error, which is raised again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine

from reconciliation.model import Window
from saleshub.store import runs
from saleshub.store.failures import database_errors

__all__ = ["recorded_run"]


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, Exception):
        return str(exc)[:2000]
    return f"stopped before the end ({type(exc).__name__})"  # a stop signal or an interrupt


@contextmanager
def recorded_run(
    engine: Engine, *, system: str, window: Window, grace_seconds: int, manifest: str, started: datetime
) -> Iterator[tuple[uuid.UUID, Connection]]:
    """Write the run's row, then give its id and the run's transaction (see the module's docs)."""
    run_id = uuid.uuid4()
    with database_errors(), engine.begin() as conn:
        runs.start_run(
            conn,
            run_id=run_id,
            system=system,
            window_start=window.start,
            window_end=window.end,
            grace_seconds=grace_seconds,
            manifest=manifest,
            started_at=started,
        )
    try:
        with database_errors(), engine.begin() as conn:
            yield run_id, conn
    except BaseException as exc:
        with engine.begin() as conn:
            runs.fail_run(conn, run_id=run_id, error=_error_text(exc))
        raise
