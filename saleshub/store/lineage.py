"""Reading what a field's lineage is computed from: an order version with its event, and recent orders.

Nothing is stored for lineage: ``saleshub orders explain`` maps a version's stored raw body again
with the stored mapping revision, and ``saleshub mappings uses`` does so for the newest version of
each of the last N orders. These are the reads they need; nothing here writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Connection, and_, select
from sqlalchemy.orm import aliased

from saleshub.store.events import body_columns, open_bodies
from saleshub.store.personal import Erased, personal_data
from saleshub.store.queries import OpenedRow
from saleshub.store.tables import integration_events, service_order_versions, service_orders

__all__ = ["event_body", "order_version", "recent_order_bodies"]

_E = integration_events.c
_O = service_orders.c
_V = service_order_versions.c


def order_version(conn: Connection, hub_order_id: uuid.UUID, version_no: int | None) -> OpenedRow | None:
    """Version ``version_no`` (the newest when ``None``) of an order, with its event's raw body.

    Columns: ``version_no``, ``event_id``, ``content``, ``mapping``, ``recorded_at``, ``raw_body``,
    ``event_status`` and ``latest`` (the order's newest version number).
    """
    latest = select(_O.version_no).where(_O.hub_order_id == hub_order_id).scalar_subquery()
    original = aliased(integration_events)  # a replayed event keeps its bytes with the original
    query = (
        select(
            _V.version_no,
            _V.event_id,
            _V.content,
            _V.personal,
            _V.data_key_id,
            _V.mapping,
            _V.recorded_at,
            *body_columns(original),
            _E.status.label("event_status"),
            latest.label("latest"),
        )
        .join(integration_events, and_(_E.event_id == _V.event_id, _E.hub_order_id == _V.hub_order_id))
        .outerjoin(original, original.c.event_id == _E.replay_of)
        .where(_V.hub_order_id == hub_order_id)
    )
    if version_no is None:
        query = query.order_by(_V.version_no.desc()).limit(1)
    else:
        query = query.where(_V.version_no == version_no)
    row = conn.execute(query).first()
    if row is None:
        return None
    port = personal_data(conn)
    content = port.open_order(conn, hub_order_id, row.content, row.personal, row.data_key_id)
    erased = isinstance(content, Erased)
    return OpenedRow(
        row,
        content=row.content if erased else content,
        raw_body=None if erased else open_bodies(conn, [row])[0],
        erased=erased,
    )


def recent_order_bodies(conn: Connection, last: int) -> Sequence[OpenedRow]:
    """The last ``last`` updated orders, newest first, each with its newest version's raw body.

    Columns: ``hub_order_id``, ``source_system``, ``external_order_id``, ``mapping`` (the label of
    the revision that produced the version) and ``raw_body`` (``None`` once retention purged it).
    """
    orders = (
        select(_O.hub_order_id, _O.source_system, _O.external_order_id, _O.mapping, _O.last_event_id)
        .order_by(_O.updated_at.desc())
        .limit(last)
        .subquery()
    )
    original = aliased(integration_events)  # a replayed event keeps its bytes with the original
    query = (
        select(
            orders.c.hub_order_id,
            orders.c.source_system,
            orders.c.external_order_id,
            orders.c.mapping,
            *body_columns(original),
        )
        .join(
            integration_events,
            and_(_E.event_id == orders.c.last_event_id, _E.hub_order_id == orders.c.hub_order_id),
            isouter=True,
        )
        .outerjoin(original, original.c.event_id == _E.replay_of)
    )
    rows = conn.execute(query).all()
    return [OpenedRow(row, raw_body=body) for row, body in zip(rows, open_bodies(conn, rows), strict=True)]


def event_body(conn: Connection, event_id: uuid.UUID) -> bytes | None:
    """An event's raw bytes: its own, or its original's when it is a replay (``None`` once purged)."""
    original = aliased(integration_events)
    query = (
        select(*body_columns(original))
        .outerjoin(original, original.c.event_id == _E.replay_of)
        .where(_E.event_id == event_id)
    )
    row = conn.execute(query).first()
    return None if row is None else open_bodies(conn, [row])[0]
