"""Writing canonical orders: the upsert rules and the version history, inside the caller's transaction.

Rules for an incoming mapped order against the stored one (same ``source_system`` and
``external_order_id``):

* none stored → insert, version 1;
* older source version than stored (or, when a side has no version, an older ``source_updated_at``)
  → **stale**: nothing changes;
* same content fingerprint → **duplicate**: nothing changes, except that a newer source version is
  remembered so a later, older update is still recognised as stale;
* otherwise → update, next version number, one history row. A cancellation is an update whose
  status is ``CANCELLED``.

The stored row is locked (``SELECT … FOR UPDATE``) for the comparison, so two events of one order
processed at once are applied one after the other, never interleaved.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert

from canonical.model import ServiceOrder
from saleshub.mapping.engine import MappedOrder
from saleshub.store.tables import service_order_versions, service_orders

__all__ = ["OrderOutcome", "OrderWrite", "is_stale", "write_order"]


class OrderOutcome(StrEnum):
    """What storing one mapped order did."""

    CREATED = "created"
    UPDATED = "updated"
    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class OrderWrite:
    """The outcome and the order version it concerns (the new one, or the stored one if unchanged)."""

    outcome: OrderOutcome
    hub_order_id: uuid.UUID
    version_no: int


def is_stale(
    new_version: int | None,
    new_updated_at: datetime | None,
    stored_version: int | None,
    stored_updated_at: datetime | None,
) -> bool:
    """Whether an incoming order is older than the stored one (versions first, then times)."""
    if new_version is not None and stored_version is not None:
        return new_version < stored_version
    if new_updated_at is not None and stored_updated_at is not None:
        return new_updated_at < stored_updated_at
    return False


def _columns(order: ServiceOrder, mapped: MappedOrder, fingerprint: int) -> dict[str, Any]:
    return {
        "country_code": order.country_code,
        "bu_code": order.bu_code,
        "store_code": order.store_code,
        "sales_channel": order.sales_channel.value,
        "service_type": order.service_type.value,
        "status": order.status.value,
        "content": order.model_dump(mode="json"),
        "fingerprint": fingerprint,
        "source_version": order.source_version,
        "source_updated_at": order.source_updated_at,
        "mapping": mapped.mapping.label,
        "mapping_hash": mapped.mapping.content_hash,
    }


def _history(
    conn: Connection, order_id: uuid.UUID, version: int, event_id: uuid.UUID, row: dict[str, Any]
) -> None:
    conn.execute(
        service_order_versions.insert().values(
            hub_order_id=order_id,
            version_no=version,
            event_id=event_id,
            status=row["status"],
            content=row["content"],
            fingerprint=row["fingerprint"],
            source_version=row["source_version"],
            mapping=row["mapping"],
        )
    )


def write_order(conn: Connection, mapped: MappedOrder, event_id: uuid.UUID) -> OrderWrite:
    """Apply ``mapped`` to the store by the rules above, in ``conn``'s transaction."""
    order = mapped.order
    order_id = order.hub_order_id
    fingerprint = order.fingerprint()
    row = _columns(order, mapped, fingerprint)
    inserted = conn.execute(
        insert(service_orders)
        .values(
            hub_order_id=order_id,
            source_system=order.source_system,
            external_order_id=order.external_order_id,
            version_no=1,
            last_event_id=event_id,
            **row,
        )
        .on_conflict_do_nothing(index_elements=[service_orders.c.hub_order_id])
        .returning(service_orders.c.hub_order_id)
    ).first()
    if inserted is not None:
        _history(conn, order_id, 1, event_id, row)
        return OrderWrite(OrderOutcome.CREATED, order_id, 1)

    c = service_orders.c
    stored = conn.execute(
        select(c.version_no, c.fingerprint, c.source_version, c.source_updated_at)
        .where(c.hub_order_id == order_id)
        .with_for_update()
    ).one()
    if is_stale(
        order.source_version, order.source_updated_at, stored.source_version, stored.source_updated_at
    ):
        return OrderWrite(OrderOutcome.STALE, order_id, stored.version_no)
    if stored.fingerprint == fingerprint:
        if order.source_version is not None and (stored.source_version or -1) < order.source_version:
            conn.execute(
                service_orders.update()
                .where(c.hub_order_id == order_id)
                .values(source_version=order.source_version, source_updated_at=order.source_updated_at)
            )
        return OrderWrite(OrderOutcome.DUPLICATE, order_id, stored.version_no)
    version = stored.version_no + 1
    conn.execute(
        service_orders.update()
        .where(c.hub_order_id == order_id)
        .values(version_no=version, last_event_id=event_id, updated_at=func.now(), **row)
    )
    _history(conn, order_id, version, event_id, row)
    return OrderWrite(OrderOutcome.UPDATED, order_id, version)
