"""Writing canonical orders: the upsert rules and the version history, inside the caller's transaction.

Rules for an incoming mapped order against the stored one (same ``source_system`` and
``external_order_id``):

* none stored → insert, version 1;
* older source version than stored (or, when a side has no version, an older ``source_updated_at``)
  → **stale**: nothing changes;
* same content fingerprint → **duplicate**: nothing changes, except that a newer source version is
  remembered so a later, older update is still recognised as stale;
* otherwise → update, next version number, one history row. An update that moves the order to
  ``CANCELLED`` from another status is reported as a **cancellation**.

Stored rows are locked (``SELECT … FOR UPDATE``, in one order) for the comparison, so two events of
one order processed at once are applied one after the other, never interleaved. A brand-new order
inserted by a concurrent transaction makes our ``INSERT … ON CONFLICT DO NOTHING`` wait for it and
then skip, and the row is then locked and compared like any stored one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    LargeBinary,
    Text,
    any_,
    bindparam,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID, insert
from sqlalchemy.types import TypeEngine

from canonical.enums import OrderStatus
from canonical.model import ServiceOrder
from saleshub.errors import FatalError
from saleshub.store.arrays import array_rows
from saleshub.store.database import EncodedJSON
from saleshub.store.personal import DataKey, PersonalData, personal_data, split_personal
from saleshub.store.tables import service_order_versions, service_orders

__all__ = [
    "NewOrder",
    "OrderOutcome",
    "OrderWrite",
    "StoredOrder",
    "is_stale",
    "order_key_pair",
    "stored_orders",
    "write_orders",
]


class OrderOutcome(StrEnum):
    """What storing one mapped order did."""

    CREATED = "created"
    UPDATED = "updated"
    CANCELLED = "cancelled"
    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A canonical order to store: the event that brought it and the mapping revision that made it."""

    order: ServiceOrder
    event_id: uuid.UUID
    mapping: str  # label system/name@revision#hash
    mapping_hash: str
    sealed: frozenset[str] = frozenset()  # fields the mapping fills with personal data, acknowledged


@dataclass(frozen=True, slots=True)
class OrderWrite:
    """The outcome and the order version it concerns (the new one, or the stored one if unchanged)."""

    outcome: OrderOutcome
    hub_order_id: uuid.UUID
    version_no: int
    data_key: DataKey | None = None  # the order's: seals its outbox payload


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


def _columns(item: NewOrder, fingerprint: int, key: DataKey) -> dict[str, Any]:
    """The order's columns: its facts in clear, its personal fields sealed with its data key."""
    order = item.order
    facts, personal = split_personal(json.loads(order.model_dump_json()), item.sealed)
    return {
        "country_code": order.country_code,
        "bu_code": order.bu_code,
        "store_code": order.store_code,
        "sales_channel": order.sales_channel.value,
        "service_type": order.service_type.value,
        "status": order.status.value,
        "content": EncodedJSON(json.dumps(facts, ensure_ascii=False)),
        "personal": PersonalData.seal_personal(key, order.hub_order_id, personal),
        "data_key_id": key.key_id,
        "erased_at": None,  # a change after an erasure is a new subject's data, under a new key
        "fingerprint": fingerprint,
        "source_version": order.source_version,
        "source_updated_at": order.source_updated_at,
        "mapping": item.mapping,
        "mapping_hash": item.mapping_hash,
    }


_C = service_orders.c
# The batch's orders as parallel arrays, one statement whatever the batch size (a parameter per
# value, or a per-row executemany, costs more on the client than PostgreSQL's whole insert). The
# canonical JSON travels as text and is parsed once, into the jsonb column.
# hub_order_id derives from the unique pair, so either conflict is the same order.
_ORDER_COLUMNS: tuple[tuple[str, TypeEngine[Any]], ...] = (
    ("hub_order_id", UUID(as_uuid=True)),
    ("source_system", Text()),
    ("external_order_id", Text()),
    ("country_code", Text()),
    ("bu_code", Text()),
    ("store_code", Text()),
    ("sales_channel", Text()),
    ("service_type", Text()),
    ("status", Text()),
    ("content", Text()),
    ("fingerprint", BigInteger()),
    ("source_version", BigInteger()),
    ("source_updated_at", DateTime(timezone=True)),
    ("mapping", Text()),
    ("mapping_hash", Text()),
    ("last_event_id", UUID(as_uuid=True)),
    ("personal", LargeBinary()),
    ("data_key_id", UUID(as_uuid=True)),
    ("erased_at", DateTime(timezone=True)),
)
_ORDERS = array_rows(*_ORDER_COLUMNS)
_INSERT_NEW = (
    insert(service_orders)
    .from_select(
        [name for name, _ in _ORDER_COLUMNS] + ["version_no"],
        select(
            *(
                cast(_ORDERS.c[name], JSONB) if name == "content" else _ORDERS.c[name]
                for name, _ in _ORDER_COLUMNS
            ),
            literal(1),
        ),
    )
    .on_conflict_do_nothing()
)
# Every order of the call, inserted just now or stored before, locked in one order for every writer
# (no deadlocks between batches). A row whose last_event_id is this call's event was inserted by it:
# event ids are fresh, so no other writer can have stored one.
_LOCK_ALL = (
    select(
        _C.hub_order_id,
        _C.version_no,
        _C.status,
        _C.fingerprint,
        _C.source_version,
        _C.source_updated_at,
        _C.last_event_id,
    )
    .where(_C.hub_order_id == any_(bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))))
    .order_by(_C.hub_order_id)
    .with_for_update()
)
# Executed with a list of parameter dicts: SQLAlchemy derives the SET clause from their keys.
_UPDATE_CHANGED = (
    service_orders.update().where(_C.hub_order_id == bindparam("b_id")).values(updated_at=func.now())
)
_UPDATE_VERSION_ONLY = service_orders.update().where(_C.hub_order_id == bindparam("b_id"))
# A new version is the order row as just written, copied inside PostgreSQL: the canonical JSON is
# neither sent nor parsed a second time.
_NEW = array_rows(("hub_order_id", UUID(as_uuid=True)), ("event_id", UUID(as_uuid=True)))
_RECORD_VERSIONS = insert(service_order_versions).from_select(
    [
        "hub_order_id",
        "version_no",
        "event_id",
        "status",
        "content",
        "fingerprint",
        "source_version",
        "mapping",
        "personal",
        "data_key_id",
    ],
    select(
        _C.hub_order_id,
        _C.version_no,
        _NEW.c.event_id,
        _C.status,
        _C.content,
        _C.fingerprint,
        _C.source_version,
        _C.mapping,
        _C.personal,
        _C.data_key_id,
    )
    .select_from(_NEW)
    .join(service_orders, _C.hub_order_id == _NEW.c.hub_order_id),
)


def order_key_pair(order: ServiceOrder) -> tuple[str, str]:
    """Whose data key seals an order: ``(source_system, external_order_id)``, as its events'."""
    return (order.source_system, order.external_order_id)


def write_orders(conn: Connection, items: Sequence[NewOrder]) -> list[OrderWrite]:
    """Apply each new order by the rules above, in ``conn``'s transaction.

    Set-based: a handful of statements per call whatever its size, so a batch of events costs a few
    round trips. The orders of one call must be distinct (the caller splits repeats into the next
    call, where they see this call's result).
    """
    port = personal_data(conn)
    keys = port.order_keys(conn, [order_key_pair(item.order) for item in items])
    prepared = []
    for item in items:
        key = keys[order_key_pair(item.order)]
        prepared.append((item.order, item.event_id, _columns(item, item.order.fingerprint(), key)))
    if len({order.hub_order_id for order, _, _ in prepared}) != len(prepared):
        raise FatalError("write_orders needs distinct orders per call (the caller splits repeats)")
    if not prepared:
        return []
    new_rows = [
        {
            "hub_order_id": order.hub_order_id,
            "source_system": order.source_system,
            "external_order_id": order.external_order_id,
            "last_event_id": event_id,
            **row,
        }
        for order, event_id, row in prepared
    ]
    conn.execute(_INSERT_NEW, {f"{name}_array": [r[name] for r in new_rows] for name, _ in _ORDER_COLUMNS})
    stored = {
        r.hub_order_id: r
        for r in conn.execute(_LOCK_ALL, {"ids": [order.hub_order_id for order, _, _ in prepared]})
    }
    results: list[OrderWrite] = []
    versions: list[tuple[uuid.UUID, uuid.UUID]] = []  # (order, event) of each new version
    changed: list[dict[str, Any]] = []
    version_only: list[dict[str, Any]] = []
    for order, event_id, row in prepared:
        order_id = order.hub_order_id
        current = stored[order_id]
        key = keys[order_key_pair(order)]
        if current.last_event_id == event_id:
            versions.append((order_id, event_id))
            results.append(OrderWrite(OrderOutcome.CREATED, order_id, 1, key))
            continue
        if is_stale(
            order.source_version, order.source_updated_at, current.source_version, current.source_updated_at
        ):
            results.append(OrderWrite(OrderOutcome.STALE, order_id, current.version_no, key))
        elif current.fingerprint == row["fingerprint"]:
            if order.source_version is not None and (current.source_version or -1) < order.source_version:
                version_only.append(
                    {
                        "b_id": order_id,
                        "source_version": order.source_version,
                        "source_updated_at": order.source_updated_at,
                    }
                )
            results.append(OrderWrite(OrderOutcome.DUPLICATE, order_id, current.version_no, key))
        else:
            version = current.version_no + 1
            changed.append({"b_id": order_id, "version_no": version, "last_event_id": event_id, **row})
            versions.append((order_id, event_id))
            cancels = row["status"] == OrderStatus.CANCELLED and current.status != OrderStatus.CANCELLED
            outcome = OrderOutcome.CANCELLED if cancels else OrderOutcome.UPDATED
            results.append(OrderWrite(outcome, order_id, version, key))
    if changed:
        conn.execute(_UPDATE_CHANGED, changed)
    if version_only:
        conn.execute(_UPDATE_VERSION_ONLY, version_only)
    if versions:
        written = {order_id for order_id, _ in versions}
        port.index_orders(
            conn,
            [
                (o.hub_order_id, {"customer": o.customer.model_dump(), "system_metadata": o.system_metadata})
                for o, _, _ in prepared
                if o.hub_order_id in written
            ],
        )
        conn.execute(
            _RECORD_VERSIONS,
            {
                "hub_order_id_array": [order_id for order_id, _ in versions],
                "event_id_array": [event_id for _, event_id in versions],
            },
        )
    return results


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """An order's current content as stored, and the mapping revision that made it."""

    content: dict[str, Any]
    mapping: str
    mapping_hash: str


_READ_STORED = (
    select(_C.hub_order_id, _C.content, _C.mapping, _C.mapping_hash, _C.personal, _C.data_key_id)
    .where(_C.hub_order_id == any_(bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))))
    .order_by(_C.hub_order_id)
    .with_for_update()
)


def stored_orders(conn: Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, StoredOrder]:
    """The stored orders among ``ids``, whole, locked (same lock order as ``write_orders``).

    An order whose subject was erased is left out: the hub no longer holds the order to change.
    """
    if not ids:
        return {}
    rows = conn.execute(_READ_STORED, {"ids": list(ids)}).all()
    opened = personal_data(conn).open_orders(
        conn, [(row.hub_order_id, row.content, row.personal, row.data_key_id) for row in rows]
    )
    return {
        row.hub_order_id: StoredOrder(content, row.mapping, row.mapping_hash)
        for row, content in zip(rows, opened, strict=True)
        if isinstance(content, dict)
    }
