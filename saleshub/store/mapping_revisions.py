"""Every SQL statement about mapping revisions and the hub processes that run them.

``add_revision`` stores a whole revision (files, hash, labels, message) and, in the same
transaction, ``NOTIFY``s ``MAPPINGS_CHANNEL`` with its number, so every listening hub process
switches to it once it is committed. The newest revision is the deployed one (a rollback is a new
revision carrying an older one's files and ``rollback_of``), so the history reads top to bottom as
what was deployed when. ``report_process`` / ``live_processes`` keep the ``hub_processes`` rows
through which ``saleshub status`` shows the revision each running process maps with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert

from saleshub.store.tables import hub_processes, mapping_revisions

__all__ = [
    "MAPPINGS_CHANNEL",
    "LiveProcess",
    "StoredRevision",
    "add_revision",
    "deployed_revision",
    "forget_process",
    "live_processes",
    "next_revision",
    "report_process",
    "revision_history",
    "stored_revision",
]

#: The channel a deployment notifies (payload: the new revision's number).
MAPPINGS_CHANNEL = "saleshub_mappings"
# Deployments take this transaction-scoped advisory lock, so two at once get consecutive numbers
# and neither overtakes the other's notification.
_DEPLOY_LOCK = 0x5A1E_5A1E


@dataclass(frozen=True, slots=True)
class StoredRevision:
    """One deployed revision as stored (``files`` only when asked for)."""

    revision: int
    content_hash: str
    mappings: dict[str, str]
    message: str | None
    rollback_of: int | None
    deployed_at: datetime
    files: dict[str, str]


@dataclass(frozen=True, slots=True)
class LiveProcess:
    """A hub process seen recently, and the revision it maps with."""

    process: str
    role: str
    mapping_revision: int | None
    started_at: datetime
    seen_at: datetime


_M = mapping_revisions.c


def _revision(row: Any, with_files: bool) -> StoredRevision:
    return StoredRevision(
        row.revision,
        row.content_hash,
        dict(row.mappings),
        row.message,
        row.rollback_of,
        row.deployed_at,
        dict(row.files) if with_files else {},
    )


def _columns(with_files: bool) -> list[Any]:
    columns = [_M.revision, _M.content_hash, _M.mappings, _M.message, _M.rollback_of, _M.deployed_at]
    return [*columns, _M.files] if with_files else columns


def next_revision(conn: Connection) -> int:
    """Lock deployments for this transaction and return the next revision's number."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DEPLOY_LOCK})
    latest = conn.execute(select(func.max(_M.revision))).scalar_one()
    return 1 if latest is None else int(latest) + 1


def add_revision(
    conn: Connection,
    number: int,
    files: dict[str, str],
    content_hash: str,
    mappings: dict[str, str],
    message: str | None,
    rollback_of: int | None = None,
) -> None:
    """Store revision ``number`` (from ``next_revision``) and notify the hub processes on commit."""
    conn.execute(
        mapping_revisions.insert().values(
            revision=number,
            content_hash=content_hash,
            files=files,
            mappings=mappings,
            message=message,
            rollback_of=rollback_of,
        )
    )
    conn.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": MAPPINGS_CHANNEL, "payload": str(number)}
    )


def deployed_revision(conn: Connection, *, with_files: bool = False) -> StoredRevision | None:
    """The deployed (newest) revision, or ``None`` if none was ever deployed (or not migrated yet)."""
    if conn.execute(text("SELECT to_regclass('mapping_revisions')")).scalar() is None:
        return None
    row = conn.execute(select(*_columns(with_files)).order_by(_M.revision.desc()).limit(1)).first()
    return None if row is None else _revision(row, with_files)


def stored_revision(conn: Connection, number: int, *, with_files: bool = True) -> StoredRevision | None:
    """Revision ``number``, or ``None`` if there is no such revision."""
    row = conn.execute(select(*_columns(with_files)).where(_M.revision == number)).first()
    return None if row is None else _revision(row, with_files)


def revision_history(conn: Connection, limit: int = 50) -> list[StoredRevision]:
    """The newest ``limit`` revisions, newest first, without their files."""
    rows = conn.execute(select(*_columns(False)).order_by(_M.revision.desc()).limit(limit))
    return [_revision(row, False) for row in rows]


def report_process(conn: Connection, process: str, role: str, revision: int | None) -> None:
    """Say that ``process`` runs and maps with ``revision`` (refreshes its ``seen_at``)."""
    statement = insert(hub_processes).values(process=process, role=role, mapping_revision=revision)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[hub_processes.c.process],
            set_={"role": role, "mapping_revision": revision, "seen_at": func.now()},
        )
    )


def forget_process(conn: Connection, process: str) -> None:
    """Remove the row of a process that stops."""
    conn.execute(delete(hub_processes).where(hub_processes.c.process == process))


def live_processes(conn: Connection, within_seconds: float) -> Sequence[LiveProcess]:
    """Processes seen in the last ``within_seconds``, oldest start first."""
    recent = hub_processes.c.seen_at > func.now() - func.make_interval(0, 0, 0, 0, 0, 0, within_seconds)
    rows = conn.execute(select(hub_processes).where(recent).order_by(hub_processes.c.started_at))
    return [
        LiveProcess(row.process, row.role, row.mapping_revision, row.started_at, row.seen_at) for row in rows
    ]
