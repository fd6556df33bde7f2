"""Reconciliation runs as stored: one row per run, written first and completed or failed.

``start_run`` writes the row (status ``running``) in its own transaction; ``finish_run`` completes it
with its counts and figures in the run's transaction, ``fail_run`` marks it ``failed`` with the error.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

__all__ = [
    "StoredRun",
    "fail_run",
    "finish_run",
    "previous_run_id",
    "recent_runs",
    "run",
    "run_ids_starting",
    "start_run",
]


@dataclass(frozen=True, slots=True)
class StoredRun:
    """One reconciliation run as stored."""

    run_id: uuid.UUID
    source_system: str
    window_start: datetime
    window_end: datetime
    grace_seconds: int
    manifest: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]
    stats: dict[str, int]
    error: str | None = field(default=None)


def start_run(
    conn: Connection,
    *,
    run_id: uuid.UUID,
    system: str,
    window_start: datetime,
    window_end: datetime,
    grace_seconds: int,
    manifest: str,
    started_at: datetime,
) -> None:
    """Write the run's row, status ``running``."""
    conn.execute(
        text(
            "INSERT INTO reconciliation_runs (run_id, source_system, window_start, window_end, "
            "grace_seconds, manifest, status, started_at) VALUES (:run_id, :system, :window_start, "
            ":window_end, :grace, :manifest, 'running', :started_at)"
        ),
        {
            "run_id": run_id,
            "system": system,
            "window_start": window_start,
            "window_end": window_end,
            "grace": grace_seconds,
            "manifest": manifest,
            "started_at": started_at,
        },
    )


def finish_run(conn: Connection, run_id: uuid.UUID, counts: dict[str, int], stats: dict[str, int]) -> None:
    """Mark the run completed with its counts of findings by kind and its statistics."""
    conn.execute(
        text(
            "UPDATE reconciliation_runs SET status = 'completed', finished_at = clock_timestamp(), "
            "counts = CAST(:counts AS jsonb), stats = CAST(:stats AS jsonb) WHERE run_id = :run_id"
        ),
        {"run_id": run_id, "counts": json.dumps(counts), "stats": json.dumps(stats)},
    )


def fail_run(conn: Connection, *, run_id: uuid.UUID, error: str) -> None:
    """Mark the run failed with the error an operator reads (written after the run's rollback)."""
    conn.execute(
        text(
            "UPDATE reconciliation_runs SET status = 'failed', finished_at = clock_timestamp(), "
            "error = :error WHERE run_id = :run_id"
        ),
        {"run_id": run_id, "error": error},
    )


_RUN_COLUMNS = (
    "run_id, source_system, window_start, window_end, grace_seconds, manifest, status, started_at, "
    "finished_at, counts, stats, error"
)


def _stored(row: Any) -> StoredRun:
    return StoredRun(*row)


def run(conn: Connection, run_id: uuid.UUID) -> StoredRun | None:
    """One run by id."""
    row = conn.execute(
        text(f"SELECT {_RUN_COLUMNS} FROM reconciliation_runs WHERE run_id = :run_id"), {"run_id": run_id}
    ).first()
    return None if row is None else _stored(row)


def run_ids_starting(conn: Connection, prefix: str, limit: int = 5) -> list[uuid.UUID]:
    """The ids of runs whose id (as text: lower case, with dashes) starts with ``prefix``, newest first."""
    rows = conn.execute(
        text(
            "SELECT run_id FROM reconciliation_runs WHERE CAST(run_id AS text) LIKE :prefix "
            "ORDER BY started_at DESC LIMIT :limit"
        ),
        {"prefix": prefix.replace("%", "").replace("_", "") + "%", "limit": limit},
    ).scalars()
    return list(rows)


def recent_runs(conn: Connection, *, system: str | None = None, limit: int = 20) -> list[StoredRun]:
    """The newest runs, newest first, of one system or of all."""
    rows = conn.execute(
        text(
            f"SELECT {_RUN_COLUMNS} FROM reconciliation_runs "
            "WHERE CAST(:system AS text) IS NULL OR source_system = :system "
            "ORDER BY started_at DESC LIMIT :limit"
        ),
        {"system": system, "limit": limit},
    )
    return [_stored(row) for row in rows]


def previous_run_id(conn: Connection, system: str, before: datetime) -> uuid.UUID | None:
    """The system's last completed run started before ``before`` (its findings give ``first_seen_at``)."""
    value = conn.execute(
        text(
            "SELECT run_id FROM reconciliation_runs WHERE source_system = :system AND status = 'completed' "
            "AND started_at < :before ORDER BY started_at DESC LIMIT 1"
        ),
        {"system": system, "before": before},
    ).scalar_one_or_none()
    return value if isinstance(value, uuid.UUID) else None
