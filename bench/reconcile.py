"""Source-vs-hub reconciliation: ours against reladiff on the same data, in one run.

Builds N hub orders (``service_orders`` of system ``pyxis``, text keys like ``PYX-ES-2026-000000123``)
and a source manifest of N rows (CSV: key, version, updated-at, fingerprint) differing in 0.1% of the
orders, spread evenly (every 1000th order, the five kinds in turn: missing in the hub, missing in the
source, hub behind, source behind, same version with other content). Then, timed:

* **ours**: ``reconciliation.engine.reconcile`` end to end — the manifest file loaded with COPY,
  checked for bad rows and duplicated keys, classified in one statement, the run and its findings
  stored;
* **reladiff** (PyPI ``reladiff[postgresql]``, the ``bench`` extra): the same two sides as tables in
  the same database with an integer surrogate key (reladiff refuses text keys), built before the
  clock starts (a gift to reladiff: it does not load the file). Its fastest settings here: the
  ``joindiff`` algorithm (one outer join inside the database, both tables in one database), and
  ``hashdiff`` with 4 threads and bisection factor 64 / threshold 64k; the better one is reported.

Prints both times, the counts each found (they must agree: 1 difference per 1000 orders) and the
ratio. ``--rows 10000000`` for the scaling check.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/reconcile.py [--rows 1000000] [--skip-reladiff]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
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


def ours(engine: object, path: Path) -> tuple[float, dict[str, int]]:
    rules = SystemRules(grace_period_minutes=0)
    phases: dict[str, float] = {}

    def progress(phase: str, _done: int, _total: int | None) -> None:
        phases.setdefault(phase, time.perf_counter())

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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-reladiff", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        server = EmbeddedPostgres(workdir / "pg")
        url = server.start()
        try:
            admin = create_engine(url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text("CREATE DATABASE bench"))
            admin.dispose()
            engine = create_engine(make_url(url).set(database="bench"))
            upgrade(engine)
            path = build(engine, args.rows, workdir)
            seconds, counts = ours(engine, path)
            print(f"ours:     {seconds:6.2f} s  {sum(counts.values()):,} differences  {counts}")
            if args.skip_reladiff:
                return
            with engine.begin() as conn:
                for statement in RELADIFF_TABLES.split(";"):
                    if statement.strip():
                        conn.execute(text(statement), {"rows": args.rows})
            engine.dispose()
            socket_dir = str(server.pgdata)
            for name, taken, found in reladiff_runs(socket_dir, "bench"):
                print(
                    f"reladiff ({name}): {taken:6.2f} s  {found:,} differing keys  "
                    f"reladiff / ours = {taken / seconds:.2f}x"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
