"""An incremental linking run: new or changed orders' customers linked against the known customers.

In one transaction (the caller's connection):

1. the orders without an up-to-date customer record are streamed, normalised (``normalise``) and
   staged with their record ids — this batch is what the run links; records with identical values
   are one representative for the model;
2. the blocking-key values shared by more than ``BLOCK_LIMIT`` distinct records are found: they
   are no blocking key and (e-mail, phone) no evidence; known records sharing an open key with the
   batch are read from PostgreSQL (index probes);
3. batch and candidates stream into a DuckDB database (a memory limit, spilling to a temporary
   directory past it), the term frequencies of e-mails and phones are registered with Splink, and
   Splink scores the blocked pairs with the fixed model of ``model``; pairs between two known
   records are left out (they were decided before), and so are pairs whose given names differ;
4. the accepted pairs, strongest first, join clusters — unless the two clusters hold records whose
   given names differ (a cluster never grows by transitivity past what its records allow); each
   record is then written once, with its cluster, and the accepted links are kept with their
   evidence, streamed to PostgreSQL.

A cluster never splits in an incremental run; ``full=True`` forgets every record first and links
everything again. The first run over an empty table is the same as a full run. Scoring runs in a
worker thread so that a stop signal reaches the main thread at once; the DuckDB query is then
interrupted and the run unwinds (its transaction rolls back).

Memory is bounded whatever the data: PostgreSQL rows arrive in chunks, DuckDB holds the records and
pairs under its memory limit, and the process keeps one union-find entry per record in an accepted
pair (and the names seen in each cluster, at most ``NAMES_PER_CLUSTER``).
"""

from __future__ import annotations

import logging
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import Connection

from reconciliation.linking.model import (
    BLOCK_LIMIT,
    BLOCKING_KEYS,
    COLUMNS,
    COMPARISONS,
    GIVEN_NAMES_DIFFER,
    MATCH_THRESHOLD,
    TF_COLUMNS,
    given_names_agree,
    level_label,
    splink_settings,
)
from reconciliation.linking.normalise import customer_record, given_key
from saleshub.store import linking as store

__all__ = [
    "DUCKDB_MEMORY",
    "NAMES_PER_CLUSTER",
    "Clusters",
    "LinkProgress",
    "LinkingResult",
    "interruptible",
    "link_customers",
]

#: DuckDB's memory limit for a run; past it, DuckDB spills to a temporary directory.
DUCKDB_MEMORY = "1GB"
#: A cluster that already holds this many distinct names takes no more (a runaway chain stops).
NAMES_PER_CLUSTER = 64

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


def _normalised(conn: Connection) -> Iterator[list[tuple[store.OrderCustomer, list[str | None]]]]:
    for orders in store.orders_to_link(conn):
        chunk = []
        for order in orders:
            record = customer_record(
                {
                    "customer": order.customer,
                    "service_address": order.service_address,
                    "country_code": order.country_code,
                }
            )
            chunk.append((order, [getattr(record, c) for c in store.RECORD_COLUMNS]))
        yield chunk


_OPEN = [f"open_{i}" for i in range(len(BLOCKING_KEYS))]


def _load(con: duckdb.DuckDBPyConnection, chunks: Iterator[list[tuple[Any, ...]]], known: bool) -> int:
    """Append chunks of ``(id, cluster, *RECORD_COLUMNS, *open)`` rows to DuckDB's ``records``."""
    names = ["unique_id", "cluster_id", *store.RECORD_COLUMNS, *_OPEN]
    first = names.index("first_name")
    loaded = 0
    for rows in chunks:
        columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
        columns["given"] = [given_key(row[first]) for row in rows]
        columns["known"] = [known] * len(rows)
        chunk = pa.table(columns)  # noqa: F841 - read by DuckDB below, by name
        con.execute(f"INSERT INTO records BY NAME SELECT {', '.join(_TABLE)} FROM chunk")
        loaded += len(rows)
    return loaded


_TABLE = ["unique_id", "cluster_id", "known", *COLUMNS, *_OPEN]


def _prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Placeholder values out, then each e-mail's and phone's holders (differently named records)."""
    for index, key in enumerate(BLOCKING_KEYS):
        cols = ", ".join(key)
        # A block past the bound among the records loaded here is closed too (known ones included).
        con.execute(
            f"UPDATE records SET {_OPEN[index]} = false WHERE ({cols}) IN ("
            f"SELECT {cols} FROM records WHERE {_OPEN[index]} GROUP BY {cols} "
            f"HAVING count(*) > {BLOCK_LIMIT})"
        )
        if len(key) == 1 and key[0] in TF_COLUMNS:  # a placeholder contact is no evidence either
            con.execute(f"UPDATE records SET {key[0]} = NULL WHERE NOT {_OPEN[index]}")
    for column in TF_COLUMNS:
        u = next(level.u for level in COMPARISONS[column] if level.tf == column)
        con.execute(
            f"CREATE TABLE tf_{column} AS SELECT {column}, count(DISTINCT name_key) * {u} AS tf_{column} "
            f"FROM records WHERE {column} IS NOT NULL GROUP BY {column} HAVING count(DISTINCT name_key) > 1"
        )


def _predict(con: duckdb.DuckDBPyConnection) -> str:
    """Splink's predictions table of the blocked pairs at or above the threshold (its name)."""
    from splink import DuckDBAPI, Linker

    api = DuckDBAPI(con)
    linker = Linker(api.register("records"), splink_settings(), log_level=logging.WARNING)
    for column in TF_COLUMNS:
        linker.table_management.register_term_frequency_lookup(api.register(f"tf_{column}"), column)
    return str(linker.inference.predict(threshold_match_probability=MATCH_THRESHOLD).physical_name)


def interruptible(con: duckdb.DuckDBPyConnection, work: Callable[[duckdb.DuckDBPyConnection], str]) -> str:
    """Run ``work`` on a cursor of ``con`` in a thread; the main thread waits in short steps.

    So a signal reaches the main thread at once: on any exception there (a ``StopSignal`` from
    SIGTERM, KeyboardInterrupt) the cursor's query is interrupted — again until the thread ends, as
    the query may not have started at the first — and the exception is raised on.
    """
    cursor = con.cursor()  # DuckDB: one connection per thread; the database (tables) is shared
    outcome: dict[str, Any] = {}
    # An Event, not Thread.join: a signal raised inside join() can leave is_alive() wrong (CPython 3.11).
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = work(cursor)
        except BaseException as exc:  # carried to the main thread and raised there
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="linking-score", daemon=True).start()
    try:
        while not done.wait(0.2):
            pass
    except BaseException:
        while not done.wait(0.2):
            cursor.interrupt()
        raise
    finally:
        if done.is_set():  # not when a second signal cut the wait short: the query still holds it
            cursor.close()
    if "error" in outcome:
        raise outcome["error"]
    return str(outcome["value"])


def _evidence(weights: Sequence[float]) -> dict[str, Any]:
    return {
        name: {"level": level_label(name, weight), "weight": round(weight, 2)}
        for name, weight in zip(COMPARISONS, weights, strict=True)
    }


_Name = tuple[str | None, str | None]


@lru_cache(maxsize=1 << 16)
def _may_be_one(left: _Name, right: _Name) -> bool:
    """``given_names_agree`` with the clustering's slack, remembered (names recur across unions)."""
    return given_names_agree(left, right, slack=2)


class Clusters:
    """Union-find over cluster ids (lowest id wins) that refuses a union joining differing given names."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.names: dict[int, set[tuple[str | None, str | None]]] = {}

    def find(self, node: int) -> int:
        """The cluster ``node`` is in now."""
        root = node
        while self.parent.setdefault(root, root) != root:
            root = self.parent[root]
        while self.parent[node] != root:  # path compression
            self.parent[node], node = root, self.parent[node]
        return root

    def join(self, a: int, name_a: _Name, b: int, name_b: _Name) -> bool:
        """Join the clusters of ``a`` and ``b`` if every name of one may be every name of the other."""
        ra, rb = self.find(a), self.find(b)
        names_a = self.names.setdefault(ra, set())
        names_b = self.names.setdefault(rb, set())
        if ra == rb:
            names_a.update((name_a, name_b))
            return True
        merged = names_a | names_b | {name_a, name_b}
        if len(merged) > NAMES_PER_CLUSTER:
            return False
        side_a, side_b = names_a | {name_a}, names_b | {name_b}
        if not all(x == y or _may_be_one(x, y) for x in side_a for y in side_b):
            return False
        low, high = min(ra, rb), max(ra, rb)
        self.parent[high] = low
        self.names[low] = merged
        del self.names[high]
        return True

    def moves(self) -> Iterator[tuple[int, int]]:
        """``(node, root)`` of every node whose cluster changed."""
        for node in list(self.parent):
            root = self.find(node)
            if root != node:
                yield node, root


def _pairs(con: duckdb.DuckDBPyConnection, predictions: str) -> Iterator[tuple[Any, ...]]:
    """Accepted pairs, strongest first, in chunks (the main thread sees signals between them)."""
    weights = ", ".join(f"p.mw_{name}" for name in COMPARISONS)
    result = con.execute(
        "SELECT p.unique_id_l, p.unique_id_r, p.match_probability, p.match_weight, "
        "l.known, r.known, l.cluster_id, r.cluster_id, l.first_name, l.last_name, r.first_name, r.last_name, "
        f"{weights} FROM {predictions} p "
        "JOIN records l ON l.unique_id = p.unique_id_l JOIN records r ON r.unique_id = p.unique_id_r "
        f"WHERE NOT (l.known AND r.known) AND NOT {GIVEN_NAMES_DIFFER} "
        "ORDER BY p.match_weight DESC, p.unique_id_l, p.unique_id_r"
    )
    while rows := result.fetchmany(10_000):
        yield from rows


def _accepted(
    pairs: Iterator[tuple[Any, ...]], clusters: Clusters
) -> Iterator[tuple[int, int, float, float, dict[str, Any]]]:
    for id_l, id_r, probability, weight, _kl, _kr, cluster_l, cluster_r, f_l, l_l, f_r, l_r, *mw in pairs:
        if clusters.join(int(cluster_l), (f_l, l_l), int(cluster_r), (f_r, l_r)):
            low, high = sorted((int(id_l), int(id_r)))
            yield low, high, float(probability), float(weight), _evidence(mw)


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
    staged = store.stage_batch(conn, _normalised(conn))
    progress("normalised", staged)
    if not staged:
        return LinkingResult(0, 0, 0, 0)
    store.mark_large_blocks(conn, BLOCKING_KEYS, BLOCK_LIMIT)
    with tempfile.TemporaryDirectory(prefix="saleshub-linking-") as spill:
        con = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY, "temp_directory": spill, "threads": 2})
        try:
            con.execute(
                "CREATE TABLE records (unique_id BIGINT, cluster_id BIGINT, known BOOLEAN, "
                f"{', '.join(f'{c} VARCHAR' for c in COLUMNS)}, {', '.join(f'{o} BOOLEAN' for o in _OPEN)})"
            )
            _load(con, store.batch_records(conn, BLOCKING_KEYS), False)
            candidates = _load(con, store.candidate_records(conn, BLOCKING_KEYS), True)
            progress("candidates", candidates)
            _prepare(con)
            predictions = interruptible(con, _predict)
            progress("scored", 0)
            clusters = Clusters()
            links = store.save_links(conn, run_id, _accepted(_pairs(con, predictions), clusters), at)
        finally:
            con.close()
    moves = list(clusters.moves())
    store.save_batch(conn, moves, at)
    # Stored records of the known clusters a batch record joined together (a no-op for new ids).
    moved = store.merge_clusters(conn, moves)
    progress("saved", links)
    return LinkingResult(staged, candidates, links, moved)
