"""Sealing rows written in clear (before personal data was encrypted at rest): resumable, in batches.

``saleshub privacy encrypt`` calls ``seal_batch`` until it returns 0 for each table. A batch is one
short transaction that takes the next rows still in clear (``data_key_id IS NULL``) with
``FOR UPDATE SKIP LOCKED``, seals them with their order's data key and writes them back, so the
command can be stopped at any point and run again (or run in several processes at once), and the
hub keeps running meanwhile. Rows in clear are read correctly throughout: ``data_key_id`` NULL
means "not sealed yet".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Connection, text

from saleshub.store.events import body_key_pair
from saleshub.store.personal import PersonalData, personal_data, split_personal

__all__ = ["SEALED_TABLES", "clear_counts", "seal_batch"]

#: What ``privacy encrypt`` seals, in this order.
SEALED_TABLES: Final = ("events", "orders", "versions", "outbox")

_COUNTS = {
    "events": "SELECT count(*) FROM sales_system_integration_events "
    "WHERE raw_body IS NOT NULL AND data_key_id IS NULL",
    "orders": "SELECT count(*) FROM service_orders WHERE data_key_id IS NULL",
    "versions": "SELECT count(*) FROM service_order_versions WHERE data_key_id IS NULL",
    "outbox": "SELECT count(*) FROM event_outbox WHERE data_key_id IS NULL AND subject IS NOT NULL",
}


def clear_counts(conn: Connection) -> dict[str, int]:
    """Rows still in clear, per table of ``SEALED_TABLES``."""
    return {table: int(conn.execute(text(query)).scalar_one()) for table, query in _COUNTS.items()}


def seal_batch(conn: Connection, table: str, limit: int) -> int:
    """Seal up to ``limit`` rows of ``table`` still in clear; how many were sealed."""
    port = personal_data(conn)
    return {"events": _events, "orders": _orders, "versions": _versions, "outbox": _outbox}[table](
        conn, port, limit
    )


def _events(conn: Connection, port: PersonalData, limit: int) -> int:
    rows = conn.execute(
        text(
            "SELECT event_id, received_at, source_system, order_key, raw_body, body_sha256 "
            "FROM sales_system_integration_events WHERE raw_body IS NOT NULL AND data_key_id IS NULL "
            "LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"limit": limit},
    ).all()
    if not rows:
        return 0
    pairs = [body_key_pair(r.source_system, r.order_key, r.event_id) for r in rows]
    keys = port.order_keys(conn, pairs)
    conn.execute(
        text(
            "UPDATE sales_system_integration_events e SET raw_body = v.body, data_key_id = v.key_id "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:at AS timestamptz[]), CAST(:bodies AS bytea[]), "
            "CAST(:keys AS uuid[])) AS v(event_id, received_at, body, key_id) "
            "WHERE e.event_id = v.event_id AND e.received_at = v.received_at"
        ),
        {
            "ids": [r.event_id for r in rows],
            "at": [r.received_at for r in rows],
            "bodies": [
                port.seal_body(keys[pair], bytes(r.raw_body), bytes(r.body_sha256))
                for r, pair in zip(rows, pairs, strict=True)
            ],
            "keys": [keys[pair].key_id for pair in pairs],
        },
    )
    return len(rows)


def _split_rows(
    conn: Connection, port: PersonalData, rows: Sequence[Any]
) -> tuple[list[str], list[bytes], list[Any]]:
    keys = port.order_keys(conn, [(r.source_system, r.external_order_id) for r in rows])
    contents, sealed, key_ids = [], [], []
    for row in rows:
        key = keys[row.source_system, row.external_order_id]
        facts, personal = split_personal(row.content)
        contents.append(json.dumps(facts, ensure_ascii=False))
        sealed.append(PersonalData.seal_personal(key, row.hub_order_id, personal))
        key_ids.append(key.key_id)
    return contents, sealed, key_ids


_ORDERS = (
    "SELECT hub_order_id, source_system, external_order_id, content FROM service_orders "
    "WHERE data_key_id IS NULL LIMIT :limit FOR UPDATE SKIP LOCKED",
    "UPDATE service_orders o SET content = CAST(v.content AS jsonb), personal = v.personal, "
    "data_key_id = v.key_id FROM unnest(CAST(:ids AS uuid[]), CAST(:nos AS int[]), "
    "CAST(:contents AS text[]), CAST(:personal AS bytea[]), CAST(:keys AS uuid[])) "
    "AS v(hub_order_id, version_no, content, personal, key_id) WHERE o.hub_order_id = v.hub_order_id",
)
_VERSIONS = (
    "SELECT v.hub_order_id, v.version_no, o.source_system, o.external_order_id, v.content "
    "FROM service_order_versions v JOIN service_orders o USING (hub_order_id) "
    "WHERE v.data_key_id IS NULL LIMIT :limit FOR UPDATE OF v SKIP LOCKED",
    "UPDATE service_order_versions s SET content = CAST(v.content AS jsonb), personal = v.personal, "
    "data_key_id = v.key_id FROM unnest(CAST(:ids AS uuid[]), CAST(:nos AS int[]), "
    "CAST(:contents AS text[]), CAST(:personal AS bytea[]), CAST(:keys AS uuid[])) "
    "AS v(hub_order_id, version_no, content, personal, key_id) "
    "WHERE s.hub_order_id = v.hub_order_id AND s.version_no = v.version_no",
)


def _orders(conn: Connection, port: PersonalData, limit: int) -> int:
    return _order_rows(conn, port, limit, *_ORDERS)


def _versions(conn: Connection, port: PersonalData, limit: int) -> int:
    return _order_rows(conn, port, limit, *_VERSIONS)


def _order_rows(conn: Connection, port: PersonalData, limit: int, read: str, write: str) -> int:
    """Seal up to ``limit`` order or version rows still in clear (``read`` takes them, ``write`` seals)."""
    rows: Sequence[Any] = conn.execute(text(read), {"limit": limit}).all()
    if not rows:
        return 0
    contents, sealed, key_ids = _split_rows(conn, port, rows)
    conn.execute(
        text(write),
        {
            "ids": [r.hub_order_id for r in rows],
            "nos": [getattr(r, "version_no", None) for r in rows],
            "contents": contents,
            "personal": sealed,
            "keys": key_ids,
        },
    )
    port.index_orders(conn, [(r.hub_order_id, r.content) for r in rows])
    return len(rows)


def _outbox(conn: Connection, port: PersonalData, limit: int) -> int:
    rows = conn.execute(
        text(
            "SELECT x.outbox_id, x.event_id, x.payload, o.source_system, o.external_order_id "
            "FROM event_outbox x JOIN service_orders o ON o.hub_order_id = CAST(x.subject AS uuid) "
            "WHERE x.data_key_id IS NULL AND x.subject IS NOT NULL LIMIT :limit FOR UPDATE OF x SKIP LOCKED"
        ),
        {"limit": limit},
    ).all()
    if not rows:
        return 0
    keys = port.order_keys(conn, [(r.source_system, r.external_order_id) for r in rows])
    conn.execute(
        text(
            "UPDATE event_outbox x SET payload = v.payload, data_key_id = v.key_id "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:payloads AS bytea[]), CAST(:keys AS uuid[])) "
            "AS v(outbox_id, payload, key_id) WHERE x.outbox_id = v.outbox_id"
        ),
        {
            "ids": [r.outbox_id for r in rows],
            "payloads": [
                PersonalData.seal_payload(
                    keys[r.source_system, r.external_order_id], bytes(r.payload), r.event_id
                )
                for r in rows
            ],
            "keys": [keys[r.source_system, r.external_order_id].key_id for r in rows],
        },
    )
    return len(rows)
