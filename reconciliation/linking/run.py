"""An incremental linking run: new or changed orders' customers linked against the known customers.

In one transaction (the caller's connection):

1. the orders without an up-to-date customer record are read and normalised (``normalise``) —
   this batch is what the run links — and staged with their record ids;
2. known records sharing a blocking key with the batch are read from PostgreSQL (index probes);
3. batch and candidates go into an in-memory DuckDB database, and Splink scores the blocked pairs
   with the fixed model of ``model``; pairs between two known records are left out (they were
   decided before);
4. connected components over the batch's records and the known clusters they touch give the
   clusters: a record joining a known customer takes its cluster id, a record linking two customers
   merges them (the lowest id stays); each record is then written once, with its cluster, and the
   accepted links are kept with their evidence.

A cluster never splits in an incremental run; ``full=True`` forgets every record first and links
everything again. The first run over an empty table is the same as a full run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import Connection

from reconciliation.linking.model import (
    BLOCKING_KEYS,
    COLUMNS,
    COMPARISONS,
    MATCH_THRESHOLD,
    level_label,
    splink_settings,
)
from reconciliation.linking.normalise import customer_record
from saleshub.store import linking as store

__all__ = ["LinkProgress", "LinkingResult", "link_customers"]

#: Told what the run is doing: a phase name and how many records it concerns.
LinkProgress = Callable[[str, int], None]


def _quiet(_phase: str, _count: int) -> None:
    return None


@dataclass(frozen=True, slots=True)
class LinkingResult:
    """What one run did."""

    records: int  # new or changed records linked
    candidates: int  # known records they were compared with
    links: int  # accepted links
    clusters_touched: int  # records whose cluster changed

    def as_stats(self) -> dict[str, int]:
        """The figures for a run's ``stats``."""
        return {
            "customer_records_linked": self.records,
            "customer_candidates": self.candidates,
            "customer_links": self.links,
            "customer_cluster_moves": self.clusters_touched,
        }


def _staged(conn: Connection) -> list[store.StoredRecord]:
    orders, values = [], []
    for order in store.orders_to_link(conn):
        record = customer_record(
            {
                "customer": order.customer,
                "service_address": order.service_address,
                "country_code": order.country_code,
            }
        )
        orders.append(order)
        values.append([getattr(record, c) for c in store.RECORD_COLUMNS])
    return store.stage_batch(conn, orders, values) if orders else []


def _arrow(records: Sequence[store.StoredRecord], known: bool) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {"unique_id": [], "cluster_id": [], "known": []}
    columns |= {c: [] for c in COLUMNS}
    for r in records:
        columns["unique_id"].append(r.record_id)
        columns["cluster_id"].append(r.cluster_id)
        columns["known"].append(known)
        for c in COLUMNS:
            columns[c].append(r.values[c])
    return columns


def _score(batch: Sequence[store.StoredRecord], known: Sequence[store.StoredRecord]) -> list[tuple[Any, ...]]:
    """Accepted pairs: ``(id_l, id_r, probability, weight, known_l, known_r, cluster_l, cluster_r, mw…)``."""
    from splink import DuckDBAPI, Linker

    columns = _arrow(batch, False)
    for name, values in _arrow(known, True).items():
        columns[name] += values
    con = duckdb.connect()
    try:
        con.register("records_in", pa.table(columns))
        con.execute("CREATE TABLE records AS SELECT * FROM records_in")
        api = DuckDBAPI(con)
        linker = Linker(api.register("records"), splink_settings(), log_level=logging.WARNING)
        predictions = linker.inference.predict(threshold_match_probability=MATCH_THRESHOLD)
        weights = ", ".join(f"p.mw_{name}" for name in COMPARISONS)
        return con.execute(
            "SELECT p.unique_id_l, p.unique_id_r, p.match_probability, p.match_weight, "
            f"l.known, r.known, l.cluster_id, r.cluster_id, {weights} FROM {predictions.physical_name} p "
            "JOIN records l ON l.unique_id = p.unique_id_l JOIN records r ON r.unique_id = p.unique_id_r "
            "WHERE NOT (l.known AND r.known)"
        ).fetchall()
    finally:
        con.close()


def _evidence(weights: Sequence[float]) -> dict[str, Any]:
    return {
        name: {"level": level_label(name, weight), "weight": round(weight, 2)}
        for name, weight in zip(COMPARISONS, weights, strict=True)
    }


class _Components:
    """Connected components over batch records and known clusters (union by lowest id)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, node: int) -> int:
        root = node
        while self.parent.setdefault(root, root) != root:
            root = self.parent[root]
        while self.parent[node] != root:  # path compression
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def link_customers(
    conn: Connection,
    *,
    run_id: uuid.UUID | None,
    at: datetime,
    full: bool = False,
    progress: LinkProgress = _quiet,
) -> LinkingResult:
    """Link the customers of new or changed orders; return what changed (see the module's docs)."""
    if full:
        store.forget_all(conn)
    batch = _staged(conn)
    progress("normalised", len(batch))
    if not batch:
        return LinkingResult(0, 0, 0, 0)
    known = store.candidate_records(conn, BLOCKING_KEYS)
    progress("candidates", len(known))
    pairs = _score(batch, known)
    progress("scored", len(pairs))
    components = _Components()
    for record in batch:  # a node per batch record: a new one is its own cluster (cluster id = its id)
        components.find(record.record_id)
        if record.cluster_id != record.record_id:  # a changed record stays with its customer
            components.union(record.record_id, record.cluster_id)
    links = []
    for id_l, id_r, probability, weight, known_l, known_r, cluster_l, cluster_r, *mw in pairs:
        components.union(cluster_l if known_l else id_l, cluster_r if known_r else id_r)
        low, high = sorted((int(id_l), int(id_r)))
        links.append((low, high, float(probability), float(weight), _evidence(mw)))
    roots = {node: components.find(node) for node in list(components.parent)}
    moved = [(r.record_id, roots[r.record_id]) for r in batch if roots[r.record_id] != r.cluster_id]
    store.save_batch(conn, moved, at)
    # Stored records of the clusters a batch record joined together (a no-op for brand-new ids).
    moves = store.merge_clusters(conn, [(node, root) for node, root in roots.items() if root != node])
    store.save_links(conn, run_id, links, at)
    progress("saved", len(links))
    return LinkingResult(len(batch), len(known), len(links), moves)
