"""Customer linking at scale: N synthetic customer records with seeded typos, linked end to end.

For each size (default 100,000 and 1,000,000 records): the records of ``tests.support.people``
(people in ES, FR, IT and PL, one to four orders each across systems and channels, with typos,
swapped names, missing accents, transliterated Cyrillic, several phone formats and families sharing
a landline and an address) are written as ``service_orders`` rows (content = the order's customer
and address parts) with ``COPY`` before the clock starts. ``--data households`` makes the hard
set: 40 % of people in households, 70 % of those sharing one e-mail and one phone besides the
address, and 12 % of people giving the store terminal's placeholder e-mail and phone (thousands of
people share it); ``--identical N`` adds N identical orders of one customer (left out of the
scores). Then, timed, each in a fresh process whose peak resident memory is reported: the first
linking run over all of them (``reconciliation.linking.link_customers``: read and normalise from
PostgreSQL, save the records, score the blocked pairs with Splink on DuckDB, cluster, write links
and clusters), and a nightly run linking 1% new records against the known ones. Precision and
recall are computed against the seeded people over pairs of records in one cluster.

    .venv/bin/python bench/linking.py [--records 100000 1000000] [--data standard|households]
                                      [--identical 300000]

Prints one line per size and the ratio of the largest run's time to the smallest's.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import multiprocessing
import random
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, text  # noqa: E402

from reconciliation.linking.run import link_customers  # noqa: E402
from saleshub.store.embedded import EmbeddedPostgres  # noqa: E402
from saleshub.store.migrate import upgrade  # noqa: E402
from tests.support.people import SyntheticRecord, generate, pair_scores  # noqa: E402

_HARD = {"family_share": 0.4, "shared_contacts": 0.7, "placeholders": 0.12}

_COLUMNS = (
    "hub_order_id, source_system, external_order_id, country_code, bu_code, sales_channel, service_type, "
    "status, content, fingerprint, mapping, mapping_hash, version_no, last_event_id"
)


def _write(engine: Engine, records: list[SyntheticRecord], offset: int) -> None:
    with engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY service_orders ({_COLUMNS}) FROM STDIN") as copy:
            for i, r in enumerate(records, start=offset):
                order_id = uuid.UUID(int=i + 1)
                content = json.dumps({"customer": r.customer, "service_address": r.service_address})
                copy.write_row(
                    (
                        order_id,
                        r.source_system,
                        f"ORD-{i:09d}",
                        r.country_code,
                        f"LM-{r.country_code}",
                        r.sales_channel,
                        "REPAIR",
                        "RECEIVED",
                        content,
                        i,
                        "bench",
                        "0",
                        1,
                        order_id,
                    )
                )


def _scores(engine: Engine, records: list[SyntheticRecord]) -> tuple[float, float]:
    with engine.connect() as conn:
        cluster = dict(conn.execute(text("SELECT external_order_id, cluster_id FROM customer_records")).all())
    precision, recall, _, _ = pair_scores((r.person, cluster[f"ORD-{i:09d}"]) for i, r in enumerate(records))
    return precision, recall


def _link(url: str) -> dict[str, float]:
    """One linking run in this (fresh) process: its phases, result and peak resident memory."""
    import splink  # noqa: F401 - imported before the clock starts, as in a long-running process

    engine = create_engine(url)
    phases: dict[str, float] = {}
    started = time.perf_counter()

    def mark(phase: str, _count: int) -> None:
        phases[phase] = time.perf_counter() - started

    try:
        with engine.begin() as conn:
            result = link_customers(conn, run_id=None, at=datetime.now(UTC), progress=mark)
    finally:
        engine.dispose()
    return {
        "seconds": time.perf_counter() - started,
        "normalise_s": phases.get("normalised", 0.0),
        "score_s": phases.get("scored", 0.0) - phases.get("candidates", 0.0),
        "save_s": phases.get("saved", 0.0) - phases.get("scored", 0.0),
        "candidates": result.candidates,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _in_fresh_process(url: str) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_link, url).result()


def _one_customer(count: int) -> list[SyntheticRecord]:
    twin = next(generate(1, seed=99))
    return [twin] * count


def run(engine: Engine, url: str, size: int, data: str, identical: int) -> dict[str, float]:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE service_orders, customer_records, customer_links RESTART IDENTITY"))
    nightly = max(size // 100, 1)
    options = _HARD if data == "households" else {}
    records = list(itertools.islice(generate(size, seed=1, **options), size + nightly))
    random.Random(2).shuffle(records)  # the nightly batch: new orders of known and of new people
    first, new = records[:size], records[size:]
    _write(engine, first, 0)
    if identical:
        _write(engine, _one_customer(identical), size + nightly)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE service_orders"))
    linked = _in_fresh_process(url)
    precision, recall = _scores(engine, first)
    _write(engine, new, size)
    nightly_run = _in_fresh_process(url)
    precision_all, recall_all = _scores(engine, first + new)
    figures = {
        "records": size,
        **linked,
        "precision": precision,
        "recall": recall,
        "nightly_records": len(new),
        "nightly_candidates": nightly_run["candidates"],
        "nightly_seconds": nightly_run["seconds"],
        "nightly_peak_mb": nightly_run["peak_mb"],
        "precision_after_nightly": precision_all,
        "recall_after_nightly": recall_all,
    }
    extra = f" + {identical:,} identical orders of one customer" if identical else ""
    print(
        f"{size:>9,} records ({data}{extra}): {linked['seconds']:6.1f} s (read+normalise "
        f"{linked['normalise_s']:.1f} s, Splink {linked['score_s']:.1f} s, save {linked['save_s']:.1f} s), "
        f"peak {linked['peak_mb']:,.0f} MB, precision {precision:.4f}, recall {recall:.4f}; "
        f"nightly {len(new):,} new against {nightly_run['candidates']:,} known: "
        f"{nightly_run['seconds']:.1f} s, peak {nightly_run['peak_mb']:,.0f} MB, "
        f"then precision {precision_all:.4f}, recall {recall_all:.4f}",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--data", choices=("standard", "households"), default="standard")
    parser.add_argument("--identical", type=int, default=0, help="identical orders of one customer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-linking-") as tmp:
        server = EmbeddedPostgres(Path(tmp))
        url = server.start()
        engine = create_engine(url)
        try:
            upgrade(engine)
            results = [run(engine, url, size, args.data, args.identical) for size in sorted(args.records)]
        finally:
            engine.dispose()
            server.stop()
    small, large = results[0], results[-1]
    if large is not small:
        ratio = large["seconds"] / small["seconds"]
        scale = large["records"] / small["records"]
        print(f"{large['records']:,} / {small['records']:,} records ({scale:.0f}×): time {ratio:.1f}×")


if __name__ == "__main__":
    main()
