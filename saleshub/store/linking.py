"""Customer linking in the store: which orders need a customer record, the records, links and clusters.

A nightly run works in one transaction:

1. ``orders_to_link`` streams the orders that have no customer record yet, or whose content changed
   since theirs was made (the order's fingerprint), with the customer and address parts of their
   canonical JSON;
2. ``stage_batch`` puts their normalised records in a temporary table (``COPY``), each with its
   record id (a new one from the table's sequence, a changed one keeps its own);
3. ``candidate_records`` reads the known records that share a blocking key with the batch (each key
   an index probe), so the batch is scored against them rather than against every record;
4. ``save_batch`` writes each record once, with the cluster the model put it in; ``save_links`` and
   ``merge_clusters`` (known customers a new record joined together) keep the rest.

The personal values never leave the database except into the linking process's memory; the reads
for reports (``run_links``) return them for masking by the caller.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

__all__ = [
    "RECORD_COLUMNS",
    "LinkRow",
    "OrderCustomer",
    "StoredRecord",
    "candidate_records",
    "customer_counts",
    "forget_all",
    "merge_clusters",
    "orders_to_link",
    "run_links",
    "save_batch",
    "save_links",
    "stage_batch",
]

#: The normalised columns of a customer record (personal data), in table order.
RECORD_COLUMNS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "name_key",
    "postal_code",
    "street",
    "house_number",
    "city",
)
_BATCH = "linking_batch"


@dataclass(frozen=True, slots=True)
class OrderCustomer:
    """An order to link: its identity, tenancy, fingerprint, and its customer and address JSON."""

    hub_order_id: uuid.UUID
    source_system: str
    external_order_id: str
    sales_channel: str
    country_code: str
    bu_code: str
    fingerprint: int
    customer: dict[str, Any]
    service_address: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A customer record as the model reads it: its id, cluster and normalised values."""

    record_id: int
    cluster_id: int
    values: dict[str, str | None]


@dataclass(frozen=True, slots=True)
class LinkRow:
    """A stored link with both records' identity and (unmasked: the caller masks) values."""

    left: dict[str, Any]
    right: dict[str, Any]
    match_probability: float
    match_weight: float
    evidence: dict[str, Any]


def orders_to_link(conn: Connection, *, batch: int = 50_000) -> Iterator[OrderCustomer]:
    """Orders without a customer record, or changed since theirs was normalised (server-side cursor)."""
    result = conn.execute(
        text(
            "SELECT o.hub_order_id, o.source_system, o.external_order_id, o.sales_channel, o.country_code, "
            "o.bu_code, o.fingerprint, o.content -> 'customer', o.content -> 'service_address' "
            "FROM service_orders o LEFT JOIN customer_records r ON r.hub_order_id = o.hub_order_id "
            "WHERE r.record_id IS NULL OR r.order_fingerprint <> o.fingerprint"
        ),
        execution_options={"stream_results": True, "yield_per": batch},
    )
    for row in result:
        yield OrderCustomer(*row)


_ORDER_COLUMNS = (
    "hub_order_id, source_system, external_order_id, sales_channel, country_code, bu_code, order_fingerprint"
)


def stage_batch(
    conn: Connection, orders: Sequence[OrderCustomer], values: Sequence[Sequence[str | None]]
) -> list[StoredRecord]:
    """Put the batch's normalised records (``values`` in ``RECORD_COLUMNS`` order) in a temporary table.

    Each gets its record id now: a changed order keeps its record's id and cluster, a new one gets a
    fresh id from the table's sequence and is its own cluster until linked. Nothing is written to
    ``customer_records`` until ``save_batch``.
    """
    columns = f"{_ORDER_COLUMNS}, {', '.join(RECORD_COLUMNS)}"
    conn.execute(text(f"DROP TABLE IF EXISTS {_BATCH}_in, {_BATCH}, {_BATCH}_clusters"))
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {_BATCH}_in ON COMMIT DROP AS "
            f"SELECT {columns} FROM customer_records WITH NO DATA"
        )
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {_BATCH}_in ({columns}) FROM STDIN") as copy:
        for order, row in zip(orders, values, strict=True):
            copy.write_row(
                (
                    order.hub_order_id,
                    order.source_system,
                    order.external_order_id,
                    order.sales_channel,
                    order.country_code,
                    order.bu_code,
                    order.fingerprint,
                    *row,
                )
            )
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {_BATCH} ON COMMIT DROP AS "
            "SELECT n.id AS record_id, coalesce(n.known_cluster, n.id) AS cluster_id, n.* FROM ("
            "  SELECT coalesce(r.record_id, nextval(pg_get_serial_sequence('customer_records', 'record_id')))"
            f" AS id, r.cluster_id AS known_cluster, {', '.join('b.' + c for c in columns.split(', '))} "
            f"  FROM {_BATCH}_in b LEFT JOIN customer_records r ON r.hub_order_id = b.hub_order_id) n"
        )
    )
    conn.execute(text(f"ALTER TABLE {_BATCH} ADD PRIMARY KEY (record_id)"))
    conn.execute(text(f"ANALYZE {_BATCH}"))
    rows = conn.execute(
        text(f"SELECT record_id, cluster_id, {', '.join(RECORD_COLUMNS)} FROM {_BATCH} ORDER BY record_id")
    )
    return [_values(row) for row in rows]


def save_batch(conn: Connection, clusters: Sequence[tuple[int, int]], at: datetime) -> int:
    """Write the staged records with their clusters ``(record id, cluster id)``; the records written."""
    columns = f"{_ORDER_COLUMNS}, {', '.join(RECORD_COLUMNS)}"
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns.split(", ")[1:])
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    conn.execute(
        text(f"CREATE TEMPORARY TABLE {_BATCH}_clusters (record_id bigint, cluster_id bigint) ON COMMIT DROP")
    )
    with cursor.copy(f"COPY {_BATCH}_clusters (record_id, cluster_id) FROM STDIN") as copy:
        for pair in clusters:
            copy.write_row(pair)
    result = conn.execute(
        text(
            f"INSERT INTO customer_records (record_id, cluster_id, linked_at, {columns}) "
            f"SELECT b.record_id, coalesce(c.cluster_id, b.cluster_id), :at, "
            f"{', '.join('b.' + c for c in columns.split(', '))} FROM {_BATCH} b "
            f"LEFT JOIN {_BATCH}_clusters c ON c.record_id = b.record_id "
            f"ON CONFLICT (hub_order_id) DO UPDATE SET {updates}, cluster_id = EXCLUDED.cluster_id, "
            "linked_at = EXCLUDED.linked_at"
        ),
        {"at": at},
    )
    return int(result.rowcount)


def _values(row: Any) -> StoredRecord:
    mapping = row._mapping
    return StoredRecord(
        int(mapping["record_id"]), int(mapping["cluster_id"]), {c: mapping[c] for c in RECORD_COLUMNS}
    )


def candidate_records(conn: Connection, keys: Sequence[Sequence[str]]) -> list[StoredRecord]:
    """Known records (not in the batch) agreeing with a batch record on every column of one key."""
    allowed = set(RECORD_COLUMNS)
    if any(column not in allowed for key in keys for column in key):
        raise ValueError(f"blocking keys must use record columns: {keys}")
    probes = " UNION ".join(
        f"SELECT k.record_id FROM {_BATCH} n "
        f"JOIN customer_records k ON {' AND '.join(f'k.{c} = n.{c}' for c in key)}"
        for key in keys
    )
    rows = conn.execute(
        text(
            f"SELECT r.record_id, r.cluster_id, {', '.join('r.' + c for c in RECORD_COLUMNS)} "
            f"FROM customer_records r WHERE r.record_id IN ({probes}) "
            f"AND NOT EXISTS (SELECT 1 FROM {_BATCH} b WHERE b.record_id = r.record_id)"
        )
    )
    return [_values(row) for row in rows]


def forget_all(conn: Connection) -> None:
    """Delete every customer record and link (a full relink starts from nothing)."""
    conn.execute(text("TRUNCATE customer_links, customer_records RESTART IDENTITY"))


def save_links(
    conn: Connection,
    run_id: uuid.UUID | None,
    links: Sequence[tuple[int, int, float, float, dict[str, Any]]],
    at: datetime,
) -> None:
    """Keep accepted links ``(record_l, record_r, probability, weight, evidence)`` (newest wins)."""
    if not links:
        return
    conn.execute(text(f"DROP TABLE IF EXISTS {_BATCH}_links"))
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {_BATCH}_links ON COMMIT DROP AS SELECT record_l, record_r, "
            "match_probability, match_weight, evidence FROM customer_links WITH NO DATA"
        )
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {_BATCH}_links FROM STDIN") as copy:
        for low, high, probability, weight, evidence in links:
            copy.write_row((low, high, probability, weight, json.dumps(evidence)))
    conn.execute(
        text(
            "INSERT INTO customer_links (record_l, record_r, match_probability, match_weight, evidence, "
            f"run_id, linked_at) SELECT *, CAST(:run_id AS uuid), :at FROM {_BATCH}_links "
            "ON CONFLICT (record_l, record_r) DO UPDATE SET match_probability = EXCLUDED.match_probability, "
            "match_weight = EXCLUDED.match_weight, evidence = EXCLUDED.evidence, run_id = EXCLUDED.run_id, "
            "linked_at = EXCLUDED.linked_at"
        ),
        {"run_id": run_id, "at": at},
    )


def merge_clusters(conn: Connection, assignments: Sequence[tuple[int, int]]) -> int:
    """Move every stored record of each old cluster to its new cluster; the records moved.

    ``assignments`` are ``(old cluster, new cluster)`` of known customers a batch joined together.
    """
    if not assignments:
        return 0
    result = conn.execute(
        text(
            "UPDATE customer_records r SET cluster_id = a.cluster FROM unnest(CAST(:nodes AS bigint[]), "
            "CAST(:clusters AS bigint[])) AS a(node, cluster) WHERE r.cluster_id = a.node"
        ),
        {"nodes": [a[0] for a in assignments], "clusters": [a[1] for a in assignments]},
    )
    return int(result.rowcount)


_SIDE = "record_id, source_system, external_order_id, sales_channel, country_code, cluster_id, " + ", ".join(
    RECORD_COLUMNS
)


def run_links(conn: Connection, run_id: uuid.UUID, *, limit: int = 50) -> list[LinkRow]:
    """A run's links, weakest first (the ones a reader checks), with both records."""
    side = ", ".join(f"'{c}', {{t}}.{c}" for c in _SIDE.split(", "))
    rows = conn.execute(
        text(
            f"SELECT json_build_object({side.format(t='a')}), json_build_object({side.format(t='b')}), "
            "k.match_probability, k.match_weight, k.evidence FROM customer_links k "
            "JOIN customer_records a ON a.record_id = k.record_l "
            "JOIN customer_records b ON b.record_id = k.record_r "
            "WHERE k.run_id = :run_id ORDER BY k.match_weight, k.record_l, k.record_r LIMIT :limit"
        ),
        {"run_id": run_id, "limit": limit},
    )
    return [LinkRow(*row) for row in rows]


def customer_counts(conn: Connection) -> dict[str, Any]:
    """Customers (clusters), records, and customers seen in several channels or systems, by country."""
    rows = conn.execute(
        text(
            "SELECT country, count(*) AS customers, sum(records) AS records, "
            "count(*) FILTER (WHERE channels > 1) AS cross_channel, "
            "count(*) FILTER (WHERE systems > 1) AS cross_system FROM ("
            "  SELECT cluster_id, min(country_code) AS country, count(*) AS records, "
            "  count(DISTINCT sales_channel) AS channels, count(DISTINCT source_system) AS systems "
            "  FROM customer_records GROUP BY cluster_id) c GROUP BY ROLLUP (country) ORDER BY country"
        )
    )
    by_country: dict[str, dict[str, int]] = {}
    total: dict[str, int] = {"customers": 0, "records": 0, "cross_channel": 0, "cross_system": 0}
    for country, customers, records, cross_channel, cross_system in rows:
        figures = {
            "customers": int(customers),
            "records": int(records or 0),
            "cross_channel": int(cross_channel),
            "cross_system": int(cross_system),
        }
        if country is None:
            total = figures
        else:
            by_country[country] = figures
    return {**total, "by_country": by_country}
