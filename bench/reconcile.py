"""Source-vs-hub reconciliation: ours against reladiff on the same data, in one run.

Builds N hub orders (``service_orders`` of system ``pyxis``, text keys like ``PYX-ES-2026-000000123``)
and a source manifest of N rows (CSV: key, version, updated-at, fingerprint) differing in 0.1% of the
orders, spread evenly (every 1000th order, the five kinds in turn: missing in the hub, missing in the
source, hub behind, source behind, same version with other content). Then, timed:

* **ours**: ``reconciliation.engine.reconcile`` end to end — DuckDB reads the manifest file (typed,
  every row checked, repeated keys found) while PostgreSQL writes the hub's window as a packed
  snapshot; one join in DuckDB; the differing pairs classified in PostgreSQL and the run and its
  findings stored — with the peak memory of this process during the run (DuckDB is in it);
* **reladiff** (PyPI ``reladiff[postgresql]``, the ``bench`` extra): the same two sides as tables in
  the same database with an integer surrogate key (reladiff refuses text keys), built before the
  clock starts (a gift to reladiff: it does not load the file). Its fastest settings here: the
  ``joindiff`` algorithm (one outer join inside the database, both tables in one database), and
  ``hashdiff`` with 4 threads and bisection factor 64 / threshold 64k; the better one is reported.

Prints both times, the counts each found (they must agree: 1 difference per 1000 orders) and the
ratio. ``--scale 10000000`` then builds a second database of that many orders and runs ours again
in the same invocation, printing its time, peak memory and its ratio to the first.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/reconcile.py [--rows 1000000] [--skip-reladiff] [--scale 10000000]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from reconciliation.engine import reconcile  # noqa: E402
from reconciliation.model import Window  # noqa: E402
from reconciliation.rules import SystemRules  # noqa: E402
from reconciliation.sources import FileManifestReader  # noqa: E402
from saleshub.store.embedded import EmbeddedPostgres  # noqa: E402
from saleshub.store.migrate import upgrade  # noqa: E402

WINDOW = Window(start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 11, 2, tzinfo=UTC))

# Every 1000th order differs; (i / 1000) % 5 says how.
_BASE = """
SELECT i,
       'PYX-ES-2026-' || lpad(i::text, 9, '0') AS key,
       ('x' || substr(md5(i::text), 1, 16))::bit(64)::bigint AS fp,
       timestamptz '2026-11-01 00:00:00+00' + (i % 86000) * interval '1 second' AS updated_at,
       CASE WHEN i % 1000 = 0 THEN (i / 1000) % 5 END AS diff
FROM generate_series(1, :rows) AS i
"""

HUB = f"""
INSERT INTO service_orders (hub_order_id, source_system, external_order_id, country_code, bu_code,
    sales_channel, service_type, status, content, fingerprint, source_version, source_updated_at,
    mapping, mapping_hash, version_no, last_event_id, created_at, updated_at)
SELECT md5('pyxis:' || b.key)::uuid, 'pyxis', b.key, 'ES', 'LM-ES', 'IN_STORE', 'INSTALLATION',
       'CONFIRMED', '{{}}'::jsonb, b.fp, CASE WHEN b.diff = 3 THEN 2 ELSE 1 END, b.updated_at,
       'bench', 'bench', 1, md5('pyxis:' || b.key)::uuid, b.updated_at, b.updated_at
FROM ({_BASE}) b WHERE b.diff IS DISTINCT FROM 0
"""

MANIFEST = f"""
COPY (SELECT b.key AS external_order_id, CASE WHEN b.diff = 2 THEN 2 ELSE 1 END AS source_version,
             b.updated_at, CASE WHEN b.diff = 4 THEN b.fp + 1 ELSE b.fp END AS fingerprint
      FROM ({_BASE.replace(":rows", "{rows}")}) b WHERE b.diff IS DISTINCT FROM 1
      ORDER BY random())
TO STDOUT (FORMAT csv, HEADER true)
"""

RELADIFF_TABLES = f"""
CREATE TABLE bench_source AS
    SELECT b.i AS id, b.key, CASE WHEN b.diff = 2 THEN 2 ELSE 1 END AS version,
           CASE WHEN b.diff = 4 THEN b.fp + 1 ELSE b.fp END AS fingerprint
    FROM ({_BASE}) b WHERE b.diff IS DISTINCT FROM 1;
CREATE TABLE bench_hub AS
    SELECT b.i AS id, o.external_order_id AS key, o.source_version AS version, o.fingerprint
    FROM ({_BASE}) b JOIN service_orders o
      ON o.source_system = 'pyxis' AND o.external_order_id = b.key;
ALTER TABLE bench_source ADD PRIMARY KEY (id);
ALTER TABLE bench_hub ADD PRIMARY KEY (id);
ANALYZE bench_source;
ANALYZE bench_hub;
"""


def build(engine: object, rows: int, workdir: Path) -> Path:
    started = time.perf_counter()
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text(HUB), {"rows": rows})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # type: ignore[attr-defined]
        conn.execute(text("VACUUM ANALYZE service_orders"))
    path = workdir / "pyxis-manifest.csv"
    raw = engine.raw_connection()  # type: ignore[attr-defined]
    try:
        with (
            path.open("wb") as handle,
            raw.cursor() as cursor,
            cursor.copy(MANIFEST.replace("{rows}", str(rows))) as copy,
        ):
            for chunk in copy:
                handle.write(chunk)
        raw.commit()
    finally:
        raw.close()
    print(
        f"built {rows:,} hub orders and a {path.stat().st_size / 1e6:.0f} MB manifest in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return path


class PeakMemory:
    """This process's largest resident set while running, sampled every 20 ms from /proc."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.wait(0.02):
            with open("/proc/self/statm") as statm:
                self.peak = max(self.peak, int(statm.read().split()[1]) * page)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def ours(engine: object, path: Path) -> tuple[float, dict[str, int]]:
    rules = SystemRules(grace_period_minutes=0)
    phases: dict[str, float] = {}

    def progress(phase: str, _done: int, _total: int | None) -> None:
        phases.setdefault(phase, time.perf_counter())

    with PeakMemory() as memory:
        started = time.perf_counter()
        run_id = reconcile(
            engine,  # type: ignore[arg-type]
            FileManifestReader("pyxis", path),
            WINDOW,
            rules,
            progress=progress,
        )
        seconds = time.perf_counter() - started
    marks = [*phases.items(), ("done", started + seconds)]
    print(
        "  phases: "
        + ", ".join(f"{name} {end - at:.2f} s" for (name, at), (_, end) in itertools.pairwise(marks))
        + f"; peak memory of this process {memory.peak / 1e6:.0f} MB"
    )
    with engine.connect() as conn:  # type: ignore[attr-defined]
        counts = conn.execute(
            text("SELECT counts FROM reconciliation_runs WHERE run_id = :r"), {"r": run_id}
        ).scalar_one()
    return seconds, counts


def reladiff_runs(socket_dir: str, database: str) -> list[tuple[str, float, int]]:
    import reladiff

    db = {"driver": "postgresql", "host": socket_dir, "user": "postgres", "database": database}
    results = []
    for name, options in [
        ("joindiff", {"algorithm": "joindiff"}),
        (
            "hashdiff 4 threads, bisection 64/65536",
            {
                "algorithm": "hashdiff",
                "threaded": True,
                "max_threadpool_size": 4,
                "bisection_factor": 64,
                "bisection_threshold": 65536,
            },
        ),
    ]:
        threads = options.get("max_threadpool_size", 1)
        source = reladiff.connect_to_table(
            db, "bench_source", "id", thread_count=threads, extra_columns=("version", "fingerprint")
        )
        hub = reladiff.connect_to_table(
            db, "bench_hub", "id", thread_count=threads, extra_columns=("version", "fingerprint")
        )
        started = time.perf_counter()
        differing = {key for _sign, (key, *_rest) in reladiff.diff_tables(source, hub, **options)}
        results.append((name, time.perf_counter() - started, len(differing)))
    return results


def database(server: EmbeddedPostgres, url: str, name: str) -> object:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    engine = create_engine(make_url(url).set(database=name))
    upgrade(engine)
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-reladiff", action="store_true")
    parser.add_argument("--scale", type=int, default=0, help="then ours again at this many orders")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        server = EmbeddedPostgres(workdir / "pg")
        url = server.start()
        try:
            engine = database(server, url, "bench")
            path = build(engine, args.rows, workdir)
            seconds, counts = ours(engine, path)
            print(f"ours:     {seconds:6.2f} s  {sum(counts.values()):,} differences  {counts}")
            if not args.skip_reladiff:
                with engine.begin() as conn:  # type: ignore[attr-defined]
                    for statement in RELADIFF_TABLES.split(";"):
                        if statement.strip():
                            conn.execute(text(statement), {"rows": args.rows})
                engine.dispose()  # type: ignore[attr-defined]
                socket_dir = str(server.pgdata)
                for name, taken, found in reladiff_runs(socket_dir, "bench"):
                    print(
                        f"reladiff ({name}): {taken:6.2f} s  {found:,} differing keys  "
                        f"reladiff / ours = {taken / seconds:.2f}x"
                    )
            if args.scale:
                # A database of its own (reladiff's connections stay open on the first one).
                engine.dispose()  # type: ignore[attr-defined]
                path.unlink()
                large = database(server, url, "bench_large")
                large_path = build(large, args.scale, workdir)
                large_seconds, large_counts = ours(large, large_path)
                print(
                    f"ours at {args.scale:,}: {large_seconds:6.2f} s  {sum(large_counts.values()):,} "
                    f"differences; {large_seconds / seconds:.1f}x the time of {args.rows:,} "
                    f"for {args.scale / args.rows:.0f}x the orders"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
