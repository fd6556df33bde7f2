"""Retention in batches against the same work in one transaction, side by side on copies of one database.

Starts an embedded PostgreSQL (pgserver) in a temporary directory, records and processes N synthetic
Pyxis orders, then makes every one closed, last changed 11 years ago, with its events received 200
days ago, so all three policies apply to all of it (raw bodies, personal data, facts). The database
is copied (``CREATE DATABASE … TEMPLATE``), and each copy is run once:

* **one transaction**: ``apply_retention`` with a batch as large as the data (what a single
  statement per policy would do, holding its locks until the end);
* **batched**: the same with the default batch (``retention.batch_size``, 1,000), as the CronJob runs.

Printed: wall time of each, their ratio, orders per second, and the longest batch (how long a
batched run holds any lock); then a second batched run (nothing left: the no-op cost).

    .venv/bin/python bench/retention.py [--orders 20000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, make_url, text  # noqa: E402

from saleshub.actions.events import cli_actor  # noqa: E402
from saleshub.actions.retention import RetentionReport, apply_retention, plan_from  # noqa: E402
from saleshub.platform.settings import RetentionSettings, Settings  # noqa: E402
from saleshub.publish.outbox import Outbox  # noqa: E402
from saleshub.receive.intake import InboundEvent, admit  # noqa: E402
from saleshub.runtime import HubRuntime  # noqa: E402
from saleshub.store.embedded import EmbeddedPostgres  # noqa: E402
from tests.support.synthetic import pyxis_event  # noqa: E402


def _settings(url: str, scratch: Path) -> Settings:
    return Settings(
        database={"url": url, "data_dir": scratch},
        mappings_dir=ROOT / "mappings",
    )


def _load(hub: HubRuntime, orders: int) -> None:
    events = [InboundEvent("pyxis", "webhook", pyxis_event(n), "application/json") for n in range(orders)]
    for start in range(0, len(events), 500):
        batch = events[start : start + 500]
        hub.recorder.record_batch([(e, admit(e, hub.adapters[e.system])) for e in batch])
        hub.processor().drain(timeout=600)
    with hub.database.engine.begin() as conn:
        conn.execute(
            text("UPDATE service_orders SET status = 'COMPLETED', updated_at = now() - interval '11 years'")
        )
        conn.execute(
            text("UPDATE sales_system_integration_events SET received_at = now() - interval '200 days'")
        )
    with hub.database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def _run(hub: HubRuntime, batch: int) -> tuple[float, float, RetentionReport]:
    """Wall seconds of one run, the longest batch, and the report."""
    plan = plan_from(RetentionSettings(), batch_size=batch)
    longest, last = 0.0, time.perf_counter()

    def tick(_policy: str, _count: int) -> None:
        nonlocal longest, last
        now = time.perf_counter()
        longest, last = max(longest, now - last), now

    started = time.perf_counter()
    report = apply_retention(
        hub.database.engine, plan, actor=cli_actor(), outbox=Outbox(hub.schemas), dry_run=False, progress=tick
    )
    return time.perf_counter() - started, longest, report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=20_000, help="synthetic Pyxis orders to store")
    parser.add_argument(
        "--batch", type=int, default=RetentionSettings().batch_size, help="the batched run's batch"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="saleshub-bench-retention-") as scratch_dir:
        scratch = Path(scratch_dir)
        server = EmbeddedPostgres(scratch / "pg")
        base = server.start()
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        urls = {
            name: make_url(base).set(database=name).render_as_string(hide_password=False)
            for name in ("a", "b")
        }
        try:
            with admin.connect() as conn:
                conn.execute(text("CREATE DATABASE a"))
            hub = HubRuntime.open(_settings(urls["a"], scratch), migrate=True)
            print(f"recording and processing {args.orders} orders")
            _load(hub, args.orders)
            hub.close()
            with admin.connect() as conn:
                conn.execute(text("CREATE DATABASE b TEMPLATE a"))
            results = {}
            for name, batch in (("one transaction", args.orders * 4), ("batched", args.batch)):
                runtime = HubRuntime.open(_settings(urls["a" if name == "batched" else "b"], scratch))
                results[name] = _run(runtime, batch)
                if name == "batched":
                    again, _, report = _run(runtime, args.batch)
                    assert not any(report.counts.values()), report.counts
                runtime.close()
            for name, (seconds, longest, report) in results.items():
                done = {policy: report.total(policy) for policy in report.counts}
                print(
                    f"{name:16} {seconds:7.2f} s  {args.orders / seconds:8.0f} orders/s  "
                    f"longest transaction {longest:6.2f} s  {done}, erasures {len(report.erasure_ids)}"
                )
            ratio = results["batched"][0] / results["one transaction"][0]
            print(f"batched / one transaction: {ratio:.2f}x wall time")
            print(f"second batched run (nothing left): {again:.2f} s")
        finally:
            admin.dispose()
            server.stop()


if __name__ == "__main__":
    main()
