"""Reading the store: events, orders and their history, for the command line and for reconciliation.

Every function takes a connection and returns SQLAlchemy rows (attribute access by column name);
nothing here writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import Connection, Row, Text, func, or_, select, text
from sqlalchemy.dialects.postgresql import distinct_on

from saleshub.store.operations import error_counts_by_system
from saleshub.store.personal import Erased, personal_data
from saleshub.store.tables import integration_events, sales_systems, service_order_versions, service_orders

__all__ = [
    "AnyRow",
    "OpenedRow",
    "OrderKey",
    "default_partition_rows",
    "erased_orders",
    "event",
    "event_ids_with_prefix",
    "event_status_counts",
    "events",
    "events_per_minute",
    "find_order",
    "integration_error_counts",
    "open_problem_count",
    "order_contents",
    "order_events",
    "order_versions",
    "orders",
    "recent_bodies",
    "registered_systems",
]

#: A result row of any shape (columns by attribute).
AnyRow: TypeAlias = Row[*tuple[Any, ...]]

#: An order's place in the newest-first list: ``(updated_at, hub_order_id)``.
OrderKey: TypeAlias = tuple[datetime, uuid.UUID]

_E = integration_events.c
_O = service_orders.c
_V = service_order_versions.c


def events(
    conn: Connection,
    *,
    system: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    hub_order_id: uuid.UUID | None = None,
    before: datetime | None = None,
    open_only: bool = False,
    limit: int = 50,
) -> Sequence[AnyRow]:
    """The newest events matching the filters (raw bodies left out); ``before`` pages back by key.

    ``open_only``: only open quarantined or failed events (not replayed since), which the partial
    index of open problems serves.
    """
    query = (
        select(
            _E.event_id,
            _E.received_at,
            _E.source_system,
            _E.order_key,
            _E.transport,
            _E.event_type,
            _E.status,
            _E.errors,
            _E.mapping,
            _E.hub_order_id,
            _E.order_version_no,
            _E.replay_of,
            _E.superseded_by,
        )
        .order_by(_E.received_at.desc())
        .limit(limit)
    )
    if system is not None:
        query = query.where(_E.source_system == system)
    if status is not None:
        query = query.where(_E.status == status)
    if since is not None:
        query = query.where(_E.received_at >= since)
    if hub_order_id is not None:
        query = query.where(_E.hub_order_id == hub_order_id)
    if before is not None:
        query = query.where(_E.received_at < before)
    if open_only:
        query = query.where(_E.status.in_(("quarantined", "failed")), _E.superseded_by.is_(None))
    return conn.execute(query).all()


class OpenedRow:
    """A stored row with its sealed columns opened: attribute access and ``_mapping`` like a ``Row``."""

    def __init__(self, row: AnyRow, **opened: Any) -> None:
        self._mapping: dict[str, Any] = {**row._mapping, **opened}

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None


def event(conn: Connection, event_id: uuid.UUID) -> OpenedRow | None:
    """One event with every column, its raw body opened (``None`` when purged or erased).

    ``raw_body_erased`` says whether its subject was erased (its data key destroyed).
    """
    row = conn.execute(select(integration_events).where(_E.event_id == event_id)).first()
    if row is None:
        return None
    body = personal_data(conn).open_body(conn, row.raw_body, row.data_key_id, row.body_sha256)
    erased = isinstance(body, Erased)
    return OpenedRow(row, raw_body=None if erased else body, raw_body_erased=erased)


def event_ids_with_prefix(conn: Connection, prefix: str, limit: int = 5) -> list[uuid.UUID]:
    """Ids of events whose id starts with ``prefix`` (hexadecimal digits and dashes), at most ``limit``."""
    pattern = prefix.lower().replace("%", "").replace("_", "") + "%"
    rows = conn.execute(select(_E.event_id).where(func.cast(_E.event_id, Text).like(pattern)).limit(limit))
    return [row.event_id for row in rows]


def event_status_counts(conn: Connection, since: datetime) -> dict[tuple[str, str], int]:
    """``{(system, status): count}`` of events received since ``since``."""
    rows = conn.execute(
        select(_E.source_system, _E.status, func.count())
        .where(_E.received_at >= since)
        .group_by(_E.source_system, _E.status)
    )
    return {(system, status): count for system, status, count in rows}


def events_per_minute(conn: Connection, since: datetime) -> dict[str, dict[datetime, int]]:
    """``{system: {minute: events received}}`` since ``since`` (minutes without events left out)."""
    minute = func.date_trunc("minute", _E.received_at)
    rows = conn.execute(
        select(_E.source_system, minute, func.count())
        .where(_E.received_at >= since)
        .group_by(_E.source_system, minute)
    )
    found: dict[str, dict[datetime, int]] = {}
    for system, at, count in rows:
        found.setdefault(system, {})[at] = count
    return found


def find_order(
    conn: Connection,
    *,
    hub_order_id: uuid.UUID | None = None,
    system: str | None = None,
    external_id: str | None = None,
) -> OpenedRow | None:
    """The current order by hub id, or by source system and external order id."""
    query = select(service_orders)
    if hub_order_id is not None:
        query = query.where(_O.hub_order_id == hub_order_id)
    else:
        query = query.where(_O.source_system == system, _O.external_order_id == external_id)
    row = conn.execute(query).first()
    return None if row is None else _opened_orders(conn, [row])[0]


def _opened_orders(conn: Connection, rows: Sequence[AnyRow]) -> list[OpenedRow]:
    """Order or version rows with ``content`` the whole order (its facts alone once erased).

    ``erased`` says whether the subject was erased; the sealed ``personal`` column is not passed on.
    """
    opened = personal_data(conn).open_orders(
        conn, [(row.hub_order_id, row.content, row.personal, row.data_key_id) for row in rows]
    )
    return [
        OpenedRow(
            row,
            content=row.content if isinstance(content, Erased) else content,
            personal=None,
            erased=isinstance(content, Erased),
        )
        for row, content in zip(rows, opened, strict=True)
    ]


def orders(
    conn: Connection,
    *,
    system: str | None = None,
    channel: str | None = None,
    country: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    before: OrderKey | None = None,
    limit: int = 50,
) -> Sequence[AnyRow]:
    """The most recently updated orders matching the filters (without their content).

    ``before`` is the previous page's last key ``(updated_at, hub_order_id)``: the page after it.
    """
    query = (
        select(
            _O.hub_order_id,
            _O.source_system,
            _O.external_order_id,
            _O.country_code,
            _O.bu_code,
            _O.store_code,
            _O.sales_channel,
            _O.service_type,
            _O.status,
            _O.version_no,
            _O.mapping,
            _O.updated_at,
        )
        .order_by(_O.updated_at.desc(), _O.hub_order_id.desc())
        .limit(limit)
    )
    if before is not None:
        # ``updated_at <= t`` alone lets either index of updated_at start the scan at the key.
        moment, last_id = before
        query = query.where(
            _O.updated_at <= moment,
            or_(_O.updated_at < moment, _O.hub_order_id < last_id),
        )
    for column, value in (
        (_O.source_system, system),
        (_O.sales_channel, channel),
        (_O.country_code, country),
        (_O.status, status),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(_O.updated_at >= since)
    return conn.execute(query).all()


def order_versions(conn: Connection, hub_order_id: uuid.UUID) -> Sequence[OpenedRow]:
    """Every accepted version of an order, oldest first, opened (see ``find_order``)."""
    rows = conn.execute(
        select(service_order_versions).where(_V.hub_order_id == hub_order_id).order_by(_V.version_no)
    ).all()
    return _opened_orders(conn, rows)


def order_events(conn: Connection, hub_order_id: uuid.UUID) -> Sequence[AnyRow]:
    """Every event that concerned an order (mapped, duplicate or stale), oldest first."""
    return list(reversed(events(conn, hub_order_id=hub_order_id, limit=10_000)))


def recent_bodies(conn: Connection, system: str, last: int) -> list[bytes | None]:
    """The raw body of the newest original event (not a replay) of each of a system's last ``last`` orders.

    Newest first; an event whose order is not known (refused at intake) counts as an order of its
    own. ``None`` where retention has purged the body.
    """
    order = func.coalesce(_E.order_key, func.cast(_E.event_id, Text))
    newest = (
        select(_E.raw_body, _E.data_key_id, _E.body_sha256, _E.received_at)
        .where(_E.source_system == system, _E.replay_of.is_(None))
        .ext(distinct_on(order))
        .order_by(order, _E.received_at.desc())
        .subquery()
    )
    rows = conn.execute(
        select(newest.c.raw_body, newest.c.data_key_id, newest.c.body_sha256)
        .order_by(newest.c.received_at.desc())
        .limit(last)
    ).all()
    opened = personal_data(conn).open_bodies(conn, [(r.raw_body, r.data_key_id, r.body_sha256) for r in rows])
    return [body if isinstance(body, bytes) else None for body in opened]


def registered_systems(conn: Connection) -> set[str]:
    """The codes of the sales systems registered in ``sales_systems``."""
    return set(conn.execute(select(sales_systems.c.code)).scalars())


def open_problem_count(conn: Connection) -> int:
    """Quarantined or failed events not yet superseded by a replay."""
    return int(
        conn.execute(
            select(func.count()).where(_E.status.in_(("quarantined", "failed")), _E.superseded_by.is_(None))
        ).scalar_one()
    )


def default_partition_rows(conn: Connection) -> int:
    """Events that fell into the DEFAULT partition (no monthly partition covered them)."""
    return int(
        conn.execute(text("SELECT count(*) FROM sales_system_integration_events_default")).scalar_one()
    )


def order_contents(conn: Connection, system: str, external_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{external order id: canonical order JSON}`` of a system's stored orders among ``external_ids``.

    Whole orders, opened; an order whose subject was erased is left out.
    """
    if not external_ids:
        return {}
    rows = conn.execute(
        select(_O.external_order_id, _O.hub_order_id, _O.content, _O.personal, _O.data_key_id).where(
            _O.source_system == system, _O.external_order_id.in_(list(external_ids))
        )
    ).all()
    opened = personal_data(conn).open_orders(
        conn, [(r.hub_order_id, r.content, r.personal, r.data_key_id) for r in rows]
    )
    return {
        r.external_order_id: content
        for r, content in zip(rows, opened, strict=True)
        if isinstance(content, dict)
    }


def erased_orders(conn: Connection, system: str, external_ids: Sequence[str]) -> set[str]:
    """The external ids among ``external_ids`` of a system's orders whose subject was erased."""
    if not external_ids:
        return set()
    rows = conn.execute(
        select(_O.external_order_id).where(
            _O.source_system == system,
            _O.external_order_id.in_(list(external_ids)),
            _O.erased_at.is_not(None),
        )
    )
    return set(rows.scalars())


def integration_error_counts(
    conn: Connection, system: str, start: datetime, end: datetime
) -> tuple[int, int]:
    """``(received, quarantined)`` events of a system received in ``[start, end)``.

    Received counts what the sources sent (replays left out); quarantined counts those still
    quarantined or failed (not superseded by a successful replay).
    """
    return error_counts_by_system(conn, start, end, system=system).get(system, (0, 0))
