"""Customer linking in the store: which orders need a customer record, the records, links and clusters.

A nightly run works in one transaction:

1. ``orders_to_link`` streams the orders that have no customer record yet, or whose content changed
   since theirs was made (the order's fingerprint), with the customer and address parts of their
   canonical JSON;
2. ``stage_batch`` streams their normalised records into a temporary table (``COPY``), each with its
   record id (a new one from the table's sequence, a changed one keeps its own) and its
   *representative*: records with identical normalised values are one record for the model (a
   customer with 300,000 identical orders is scored once), represented by the lowest id;
3. ``mark_large_blocks`` finds the blocking-key values the batch shares with more than ``limit``
   distinct records (batch and known): those are never a blocking key, so no block is larger;
4. ``candidate_records`` streams the distinct known records that share an open blocking key with
   the batch (each key an index probe), so the batch is scored against them rather than against
   every record, and ``batch_records`` the batch's representatives;
5. ``save_batch`` writes each record once, with the cluster the model put its representative in;
   ``save_links`` and ``merge_clusters`` (known customers a new record joined together) keep the rest.

The orders' personal fields are opened through the personal-data port (``saleshub.store.personal``);
an erased order is never linked. The normalised records are personal data kept for blocking and
scoring; an erasure deletes its subject's records and links. The reads for reports (``run_links``)
return values for masking by the caller.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from saleshub.store.personal import personal_data
from saleshub.store.tables import CUSTOMER_RECORD_COLUMNS

__all__ = [
    "RECORD_COLUMNS",
    "LinkRow",
    "OrderCustomer",
    "batch_records",
    "candidate_records",
    "customer_counts",
    "forget_all",
    "mark_large_blocks",
    "merge_clusters",
    "orders_to_link",
    "run_links",
    "save_batch",
    "save_links",
    "stage_batch",
]

#: The normalised columns of a customer record (personal data), in table order.
RECORD_COLUMNS = CUSTOMER_RECORD_COLUMNS
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
class LinkRow:
    """A stored link with both records' identity and (unmasked: the caller masks) values."""

    left: dict[str, Any]
    right: dict[str, Any]
    match_probability: float
    match_weight: float
    evidence: dict[str, Any]


def orders_to_link(conn: Connection, *, batch: int = 50_000) -> Iterator[list[OrderCustomer]]:
    """Orders without a customer record, or changed since theirs was normalised, in chunks.

    A server-side cursor: between two chunks the connection is free for the caller's statements
    (``stage_batch`` copies each chunk before the next is fetched).
    """
    result = conn.execute(
        text(
            "SELECT o.hub_order_id, o.source_system, o.external_order_id, o.sales_channel, o.country_code, "
            "o.bu_code, o.fingerprint, o.content, o.personal, o.data_key_id "
            "FROM service_orders o LEFT JOIN customer_records r ON r.hub_order_id = o.hub_order_id "
            "WHERE (r.record_id IS NULL OR r.order_fingerprint <> o.fingerprint) AND o.erased_at IS NULL"
        ),
        execution_options={"stream_results": True, "yield_per": batch},
    )
    port = personal_data(conn)
    for part in result.partitions(batch):
        opened = port.open_orders(conn, [(row[0], row[7], row[8], row[9]) for row in part])
        yield [
            OrderCustomer(
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                row[6],
                content.get("customer") or {},
                content.get("service_address") or {},
            )
            for row, content in zip(part, opened, strict=True)
            if isinstance(content, dict)
        ]


_ORDER_COLUMNS = (
    "hub_order_id, source_system, external_order_id, sales_channel, country_code, bu_code, order_fingerprint"
)


def stage_batch(
    conn: Connection, chunks: Iterable[Sequence[tuple[OrderCustomer, Sequence[str | None]]]]
) -> int:
    """Stream the batch's normalised records (``values`` in ``RECORD_COLUMNS`` order) into a temporary table.

    Each gets its record id now: a changed order keeps its record's id and cluster, a new one gets a
    fresh id from the table's sequence and is its own cluster until linked; each gets its
    representative (``rep_id``: the lowest id among the batch's records with identical values) and the
    representative's cluster (``rep_cluster``). Nothing is written to ``customer_records`` until
    ``save_batch``. Returns the records staged.
    """
    columns = f"{_ORDER_COLUMNS}, {', '.join(RECORD_COLUMNS)}"
    values = ", ".join(RECORD_COLUMNS)
    conn.execute(text(f"DROP TABLE IF EXISTS {_BATCH}_in, {_BATCH}, {_BATCH}_clusters"))
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {_BATCH}_in ON COMMIT DROP AS "
            f"SELECT {columns} FROM customer_records WITH NO DATA"
        )
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    for rows in chunks:  # one COPY per chunk: the next chunk is fetched on this connection
        with cursor.copy(f"COPY {_BATCH}_in ({columns}) FROM STDIN") as copy:
            for order, row in rows:
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
            "SELECT m.*, coalesce(min(m.known_cluster) OVER w, m.rep_id) AS rep_cluster FROM ("
            f"  SELECT n.id AS record_id, coalesce(n.known_cluster, n.id) AS cluster_id, "
            f"  min(n.id) OVER (PARTITION BY {values}) AS rep_id, n.* FROM ("
            "    SELECT coalesce(r.record_id, "
            "    nextval(pg_get_serial_sequence('customer_records', 'record_id'))) "
            f"    AS id, r.cluster_id AS known_cluster, {', '.join('b.' + c for c in columns.split(', '))} "
            f"    FROM {_BATCH}_in b LEFT JOIN customer_records r ON r.hub_order_id = b.hub_order_id) n) m "
            "WINDOW w AS (PARTITION BY m.rep_id)"
        )
    )
    conn.execute(text(f"DROP TABLE {_BATCH}_in"))
    conn.execute(text(f"ALTER TABLE {_BATCH} ADD PRIMARY KEY (record_id)"))
    conn.execute(text(f"CREATE INDEX ON {_BATCH} (rep_id)"))
    conn.execute(text(f"ANALYZE {_BATCH}"))
    return int(conn.execute(text(f"SELECT count(*) FROM {_BATCH}")).scalar_one())


def _check_keys(keys: Sequence[Sequence[str]]) -> None:
    allowed = set(RECORD_COLUMNS)
    if any(column not in allowed for key in keys for column in key):
        raise ValueError(f"blocking keys must use record columns: {keys}")


def _large(index: int) -> str:
    return f"{_BATCH}_large_{index}"


def _open(index: int, key: Sequence[str], alias: str) -> str:
    """SQL: the record ``alias`` has every column of ``key`` and its value is not a large block."""
    present = " AND ".join(f"{alias}.{c} IS NOT NULL" for c in key)
    same = " AND ".join(f"g.{c} = {alias}.{c}" for c in key)
    return f"({present} AND NOT EXISTS (SELECT 1 FROM {_large(index)} g WHERE {same}))"


def mark_large_blocks(conn: Connection, keys: Sequence[Sequence[str]], limit: int) -> int:
    """Find the key values the batch shares with more than ``limit`` distinct records; how many.

    Distinct records: the batch's representatives and the known records' distinct values, so a
    customer's many identical orders count once. A value found here is no blocking key: neither
    a probe for candidates nor (``batch_records``/``candidate_records`` say so per key) a block.
    """
    _check_keys(keys)
    found = 0
    for index, key in enumerate(keys):
        cols = ", ".join(key)
        batch_values = f"SELECT {cols} FROM {_BATCH} WHERE record_id = rep_id"
        conn.execute(text(f"DROP TABLE IF EXISTS {_large(index)}"))
        conn.execute(
            text(
                f"CREATE TEMPORARY TABLE {_large(index)} ON COMMIT DROP AS SELECT {cols} FROM ("
                f"  {batch_values} UNION ALL SELECT {cols} FROM ("
                f"    SELECT DISTINCT {', '.join('k.' + c for c in RECORD_COLUMNS)} FROM customer_records k "
                f"    WHERE ({', '.join('k.' + c for c in key)}) IN ({batch_values}) "
                f"    AND NOT EXISTS (SELECT 1 FROM {_BATCH} b WHERE b.record_id = k.record_id)) d"
                f") v WHERE {' AND '.join(f'{c} IS NOT NULL' for c in key)} "
                f"GROUP BY {cols} HAVING count(*) > :limit"
            ),
            {"limit": limit},
        )
        found += int(conn.execute(text(f"SELECT count(*) FROM {_large(index)}")).scalar_one())
    return found


def _stream(conn: Connection, query: str, batch: int) -> Iterator[list[tuple[Any, ...]]]:
    result = conn.execute(text(query), execution_options={"stream_results": True, "yield_per": batch})
    for part in result.partitions(batch):
        yield [tuple(row) for row in part]


def batch_records(
    conn: Connection, keys: Sequence[Sequence[str]], *, batch: int = 50_000
) -> Iterator[list[tuple[Any, ...]]]:
    """The batch's representatives in chunks: ``(record id, cluster, *RECORD_COLUMNS, *open per key)``."""
    _check_keys(keys)
    opens = ", ".join(_open(i, key, "r") for i, key in enumerate(keys))
    return _stream(
        conn,
        f"SELECT r.rep_id, r.rep_cluster, {', '.join('r.' + c for c in RECORD_COLUMNS)}, {opens} "
        f"FROM {_BATCH} r WHERE r.record_id = r.rep_id",
        batch,
    )


def candidate_records(
    conn: Connection, keys: Sequence[Sequence[str]], *, batch: int = 50_000
) -> Iterator[list[tuple[Any, ...]]]:
    """Known records (not in the batch) agreeing with a batch record on an open key, as ``batch_records``.

    One per distinct set of values (the lowest record id and its cluster stands for its twins).
    """
    _check_keys(keys)
    probes = " UNION ".join(
        f"SELECT k.record_id FROM {_BATCH} n "
        f"JOIN customer_records k ON {' AND '.join(f'k.{c} = n.{c}' for c in key)} "
        f"WHERE n.record_id = n.rep_id AND {_open(i, key, 'n')}"
        for i, key in enumerate(keys)
    )
    values = ", ".join(f"r.{c}" for c in RECORD_COLUMNS)
    opens = ", ".join(_open(i, key, "r") for i, key in enumerate(keys))
    return _stream(
        conn,
        f"SELECT DISTINCT ON ({values}) r.record_id, r.cluster_id, {values}, {opens} "
        f"FROM customer_records r WHERE r.record_id IN ({probes}) "
        f"AND NOT EXISTS (SELECT 1 FROM {_BATCH} b WHERE b.record_id = r.record_id) "
        f"ORDER BY {values}, r.record_id",
        batch,
    )


def save_batch(conn: Connection, clusters: Iterable[tuple[int, int]], at: datetime) -> int:
    """Write the staged records with their clusters; the records written.

    ``clusters`` are ``(node, cluster)``: a record whose representative's cluster is ``node`` goes
    to ``cluster``; one not listed stays in its representative's cluster.
    """
    columns = f"{_ORDER_COLUMNS}, {', '.join(RECORD_COLUMNS)}"
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns.split(", ")[1:])
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {_BATCH}_clusters (node bigint PRIMARY KEY, cluster_id bigint) "
            "ON COMMIT DROP"
        )
    )
    with cursor.copy(f"COPY {_BATCH}_clusters (node, cluster_id) FROM STDIN") as copy:
        for pair in clusters:
            copy.write_row(pair)
    result = conn.execute(
        text(
            f"INSERT INTO customer_records (record_id, cluster_id, linked_at, {columns}) "
            f"SELECT b.record_id, coalesce(c.cluster_id, b.rep_cluster), :at, "
            f"{', '.join('b.' + c for c in columns.split(', '))} FROM {_BATCH} b "
            f"LEFT JOIN {_BATCH}_clusters c ON c.node = b.rep_cluster "
            f"ON CONFLICT (hub_order_id) DO UPDATE SET {updates}, cluster_id = EXCLUDED.cluster_id, "
            "linked_at = EXCLUDED.linked_at"
        ),
        {"at": at},
    )
    return int(result.rowcount)


def forget_all(conn: Connection) -> None:
    """Delete every customer record and link (a full relink starts from nothing)."""
    conn.execute(text("TRUNCATE customer_links, customer_records RESTART IDENTITY"))


def save_links(
    conn: Connection,
    run_id: uuid.UUID | None,
    links: Iterable[tuple[int, int, float, float, dict[str, Any]]],
    at: datetime,
) -> int:
    """Keep accepted links ``(record_l, record_r, probability, weight, evidence)`` (newest wins); how many.

    ``links`` is consumed while it is copied, so a run never holds all of its links at once.
    """
    conn.execute(text(f"DROP TABLE IF EXISTS {_BATCH}_links"))
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {_BATCH}_links ON COMMIT DROP AS SELECT record_l, record_r, "
            "match_probability, match_weight, evidence FROM customer_links WITH NO DATA"
        )
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    written = 0
    with cursor.copy(f"COPY {_BATCH}_links FROM STDIN") as copy:
        for low, high, probability, weight, evidence in links:
            copy.write_row((low, high, probability, weight, json.dumps(evidence)))
            written += 1
    if not written:
        return 0
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
    return written


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
