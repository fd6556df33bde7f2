"""The SQL of retention: old raw bodies, closed orders past their periods, in short batches.

Every function that changes rows changes at most ``limit`` of them, in the caller's transaction,
and takes them in a stable order from a keyset position (``after``) it returns: the caller commits
each batch and goes on from there, so no transaction holds locks for long, the hub keeps running
meanwhile, and a run stopped at any point is resumed by running it again (a row already handled no
longer qualifies). Orders are taken ``FOR UPDATE SKIP LOCKED``: one a processor is writing right now
is left for the next run, and the conditions are checked again on the row it locks.

- Raw bodies: ``raw_body`` emptied (``raw_body_purged_at`` set) in events received before a
  system's cut-off; the event row stays, the audit trail.
- Personal data: closed orders last changed before the cut-off and not yet erased are named here;
  their data keys are destroyed by ``saleshub.store.erasure``, as for a data subject's erasure.
- Facts: ``delete_orders`` removes closed orders, already erased, and their versions. Their events
  stay (the audit trail), still naming the deleted ``hub_order_id``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

from canonical.enums import CLOSED_ORDER_STATUSES

__all__ = [
    "ClosedOrder",
    "OrderPosition",
    "RawBodyPosition",
    "closed_orders",
    "closed_orders_by_system",
    "delete_orders",
    "event_systems",
    "purge_raw_bodies",
    "raw_bodies_before",
]

_CLOSED = [str(status) for status in CLOSED_ORDER_STATUSES]

# Each source system's name once, by skipping through the (source_system, received_at) index:
# a handful of index probes however many events there are.
_SYSTEMS = text(
    "WITH RECURSIVE s(code) AS ("
    "  SELECT min(source_system) FROM sales_system_integration_events "
    "  UNION ALL SELECT (SELECT min(source_system) FROM sales_system_integration_events "
    "                    WHERE source_system > s.code) FROM s WHERE s.code IS NOT NULL) "
    "SELECT code FROM s WHERE code IS NOT NULL ORDER BY code"
)
_RAW_COUNT = text(
    "SELECT count(*) FROM sales_system_integration_events "
    "WHERE source_system = :system AND received_at < :cutoff AND raw_body IS NOT NULL"
)
_RAW_PURGE = text(
    "WITH batch AS ("
    "  SELECT event_id, received_at FROM sales_system_integration_events "
    "  WHERE source_system = :system AND received_at < :cutoff AND received_at >= :after "
    "    AND raw_body IS NOT NULL "
    "  ORDER BY received_at LIMIT :limit FOR UPDATE SKIP LOCKED) "
    "UPDATE sales_system_integration_events AS e SET raw_body = NULL, raw_body_purged_at = now() "
    "FROM batch WHERE e.event_id = batch.event_id AND e.received_at = batch.received_at "
    "RETURNING e.received_at"
)

# A closed order last changed before the cut-off; ``erased``: NULL any, else erased or not.
_CLOSED_WHERE = (
    "status = ANY(CAST(:closed AS text[])) AND updated_at < :cutoff "
    "AND (CAST(:erased AS boolean) IS NULL OR (erased_at IS NOT NULL) = CAST(:erased AS boolean))"
)
_CLOSED_COUNTS = text(
    f"SELECT source_system, count(*) FROM service_orders WHERE {_CLOSED_WHERE} GROUP BY source_system"
)
_CLOSED_PAGE = text(
    f"SELECT hub_order_id, source_system, erased_at IS NOT NULL AS erased, updated_at "
    f"FROM service_orders WHERE {_CLOSED_WHERE} "
    "AND (updated_at, hub_order_id) > (:after_at, CAST(:after_id AS uuid)) "
    "ORDER BY updated_at, hub_order_id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_DELETE_VERSIONS = text("DELETE FROM service_order_versions WHERE hub_order_id = ANY(CAST(:ids AS uuid[]))")
_DELETE_ORDERS = text("DELETE FROM service_orders WHERE hub_order_id = ANY(CAST(:ids AS uuid[]))")

#: Before every timestamp and id: where a keyset walk starts.
_START_AT = datetime.fromisoformat("0001-01-01T00:00:00+00:00")
_START_ID = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class RawBodyPosition:
    """Where a system's raw-body purge goes on from (events received at or after ``received_at``)."""

    received_at: datetime = _START_AT


@dataclass(frozen=True, slots=True)
class ClosedOrder:
    """A closed order retention takes: its id, system, and whether its personal data is erased."""

    hub_order_id: uuid.UUID
    source_system: str
    erased: bool


@dataclass(frozen=True, slots=True)
class OrderPosition:
    """Where a walk over closed orders goes on from (after this ``updated_at`` and id)."""

    updated_at: datetime = _START_AT
    hub_order_id: uuid.UUID = _START_ID


def event_systems(conn: Connection) -> list[str]:
    """The source systems that have recorded events."""
    return list(conn.execute(_SYSTEMS).scalars())


def raw_bodies_before(conn: Connection, system: str, cutoff: datetime) -> int:
    """How many of ``system``'s events received before ``cutoff`` still keep their raw body."""
    return int(conn.execute(_RAW_COUNT, {"system": system, "cutoff": cutoff}).scalar_one())


def purge_raw_bodies(
    conn: Connection, system: str, cutoff: datetime, after: RawBodyPosition, limit: int
) -> tuple[int, RawBodyPosition]:
    """Empty at most ``limit`` raw bodies of ``system`` received before ``cutoff``; how many, where next."""
    received = list(
        conn.execute(
            _RAW_PURGE, {"system": system, "cutoff": cutoff, "after": after.received_at, "limit": limit}
        ).scalars()
    )
    # Events received at the same instant as the last one are taken again (``>=``): those already
    # emptied no longer qualify, so none is missed and none is done twice.
    return len(received), RawBodyPosition(max(received, default=after.received_at))


def _closed(cutoff: datetime, erased: bool | None) -> dict[str, object]:
    return {"closed": _CLOSED, "cutoff": cutoff, "erased": erased}


def closed_orders_by_system(conn: Connection, cutoff: datetime, *, erased: bool | None) -> dict[str, int]:
    """Per system, closed orders last changed before ``cutoff`` (``erased``: only those erased or not)."""
    rows = conn.execute(_CLOSED_COUNTS, _closed(cutoff, erased)).all()
    return {system: int(count) for system, count in sorted(rows)}


def closed_orders(
    conn: Connection, cutoff: datetime, after: OrderPosition, limit: int, *, erased: bool | None
) -> tuple[list[ClosedOrder], OrderPosition]:
    """The next ``limit`` closed orders last changed before ``cutoff``, locked; them, and where next."""
    rows = conn.execute(
        _CLOSED_PAGE,
        {
            **_closed(cutoff, erased),
            "after_at": after.updated_at,
            "after_id": after.hub_order_id,
            "limit": limit,
        },
    ).all()
    if not rows:
        return [], after
    found = [ClosedOrder(row.hub_order_id, row.source_system, row.erased) for row in rows]
    return found, OrderPosition(rows[-1].updated_at, rows[-1].hub_order_id)


def delete_orders(conn: Connection, order_ids: Sequence[uuid.UUID]) -> int:
    """Delete the orders with their versions; how many.

    Erase them first (``saleshub.store.erasure``): that removes their blind-index entries and
    customer records. Their events, operator actions and reconciliation history stay.
    """
    params = {"ids": list(order_ids)}
    conn.execute(_DELETE_VERSIONS, params)
    return int(conn.execute(_DELETE_ORDERS, params).rowcount)
