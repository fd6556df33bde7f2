"""Every SQL statement of the audit seals: the sealed columns, the rows of a period, the seals.

``SEALED_EVENT_COLUMNS`` and ``SEALED_ACTION_COLUMNS`` are the one definition of what a seal covers:
the columns of ``sales_system_integration_events`` and ``operator_actions`` that never change once a
row is written. An event's status, errors, mapping, order, processing time, ``processed_at``,
``superseded_by``, ``raw_body`` (emptied by retention) and ``raw_body_purged_at`` change legitimately
after it is recorded, so they are not sealed; the body's SHA-256 and size, which are, stand for the
bytes. The README's *Tamper-evident audit trail* lists the same columns (a test keeps them equal).

Sealers serialise on one advisory lock (``lock_sealing``), taken only by sealing: intake and the
processors never wait for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, func, insert, select, text

from saleshub.store.tables import audit_seals, integration_events, operator_actions

__all__ = [
    "SEALED_ACTION_COLUMNS",
    "SEALED_EVENT_COLUMNS",
    "SealRecord",
    "action_rows",
    "actions_before",
    "earliest_row",
    "event_rows",
    "events_before",
    "insert_seal",
    "last_seal",
    "lock_sealing",
    "rows_per_hour",
    "seals_from",
]

#: The immutable columns of an integration event: what its leaf hashes.
SEALED_EVENT_COLUMNS: Final = (
    "event_id",
    "received_at",
    "source_system",
    "transport",
    "content_type",
    "body_sha256",
    "body_size",
    "idempotency_key",
    "source_event_key",
    "order_key",
    "headers",
    "replay_of",
)
#: The immutable columns of an operator action (all of them: an action is never changed).
SEALED_ACTION_COLUMNS: Final = (
    "action_id",
    "acted_at",
    "subject",
    "name",
    "action",
    "object_type",
    "object_id",
    "reason",
    "detail",
)

_E = integration_events.c
_A = operator_actions.c
_S = audit_seals.c
# An arbitrary constant naming the sealers' advisory lock ("seal" in ASCII).
_SEALING_LOCK = 0x7365616C


@dataclass(frozen=True, slots=True)
class SealRecord:
    """One ``audit_seals`` row, as stored."""

    period_start: datetime
    period_end: datetime
    events_count: int
    events_root: bytes
    events_leaves: bytes
    actions_count: int
    actions_root: bytes
    actions_leaves: bytes
    root: bytes
    previous_chain: bytes
    chain: bytes
    sealed_at: datetime


def lock_sealing(conn: Connection) -> None:
    """Hold the sealers' lock until ``conn``'s transaction ends (one sealer at a time)."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEALING_LOCK})


def last_seal(conn: Connection) -> SealRecord | None:
    """The newest seal, or ``None`` before the first."""
    row = conn.execute(select(audit_seals).order_by(_S.period_start.desc()).limit(1)).first()
    return None if row is None else SealRecord(**row._mapping)


def earliest_row(conn: Connection) -> datetime | None:
    """The earliest ``received_at`` or ``acted_at`` of both trails; ``None`` when both are empty."""
    first_event = conn.execute(select(func.min(_E.received_at))).scalar_one()
    first_action = conn.execute(select(func.min(_A.acted_at))).scalar_one()
    found = [at for at in (first_event, first_action) if at is not None]
    return min(found) if found else None


def event_rows(conn: Connection, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The sealed columns of the events received in ``[start, end)``, by event id."""
    columns = [_E[name] for name in SEALED_EVENT_COLUMNS]
    query = select(*columns).where(_E.received_at >= start, _E.received_at < end).order_by(_E.event_id)
    return [dict(row._mapping) for row in conn.execute(query)]


def action_rows(conn: Connection, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The sealed columns of the operator actions of ``[start, end)``, by action id."""
    columns = [_A[name] for name in SEALED_ACTION_COLUMNS]
    query = select(*columns).where(_A.acted_at >= start, _A.acted_at < end).order_by(_A.action_id)
    return [dict(row._mapping) for row in conn.execute(query)]


def rows_per_hour(conn: Connection, start: datetime, end: datetime) -> dict[datetime, tuple[int, int]]:
    """How many events and operator actions each UTC hour of ``[start, end)`` holds (empty hours
    left out), by the hour's start."""
    counts: dict[datetime, tuple[int, int]] = {}
    for at, slot in ((_E.received_at, 0), (_A.acted_at, 1)):
        # Truncated in UTC whatever the session's time zone (one with a half-hour offset would shift it).
        hour = func.date_trunc("hour", at, "UTC").label("hour")
        query = select(hour, func.count()).where(at >= start, at < end).group_by(hour)
        for started, rows in conn.execute(query):
            events, actions = counts.get(started, (0, 0))
            counts[started] = (rows, actions) if slot == 0 else (events, rows)
    return counts


def events_before(conn: Connection, before: datetime, limit: int) -> list[tuple[uuid.UUID, datetime]]:
    """Up to ``limit`` events received before ``before`` (id and time), oldest first."""
    query = (
        select(_E.event_id, _E.received_at)
        .where(_E.received_at < before)
        .order_by(_E.received_at, _E.event_id)
        .limit(limit)
    )
    return [(row.event_id, row.received_at) for row in conn.execute(query)]


def actions_before(conn: Connection, before: datetime, limit: int) -> list[tuple[int, datetime]]:
    """Up to ``limit`` operator actions taken before ``before`` (id and time), oldest first."""
    query = select(_A.action_id, _A.acted_at).where(_A.acted_at < before).order_by(_A.action_id).limit(limit)
    return [(row.action_id, row.acted_at) for row in conn.execute(query)]


def insert_seal(conn: Connection, seal: SealRecord) -> None:
    """Store ``seal`` (in ``conn``'s transaction, under ``lock_sealing``)."""
    conn.execute(insert(audit_seals).values(**asdict(seal)))


def seals_from(conn: Connection, since: datetime | None) -> Iterator[SealRecord]:
    """The seals in period order: all, or those ending after ``since`` plus the one before them
    (whose chain hash the first of them must carry)."""
    query = select(audit_seals).order_by(_S.period_start)
    if since is not None:
        before = (
            select(_S.period_start)
            .where(_S.period_end <= since)
            .order_by(_S.period_start.desc())
            .limit(1)
            .scalar_subquery()
        )
        query = query.where((_S.period_end > since) | (_S.period_start == before))
    for row in conn.execute(query.execution_options(yield_per=16)):
        yield SealRecord(**row._mapping)
