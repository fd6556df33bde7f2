"""Field lineage: CPU per explained order against mapping the same body without tracing, and `uses`.

Starts an embedded PostgreSQL (pgserver) in a temporary directory, deploys the shipped mappings as
revision r1, records and processes N synthetic Pyxis orders plus every golden sample of every system,
then measures, in this process (``time.process_time``, so the figures are CPU, not waiting):

* **baseline**: what the hub does per event, side by side on the same bodies: decode, then the
  generated mapping function and the canonical model's validation (``CompiledMapping.apply``);
* **trace**: the same body decoded and mapped by the tracing interpreter with every step recorded,
  validated and compared with the stored version (no database);
* **explain**: ``explain_version`` end to end as ``saleshub orders explain`` runs it (the version,
  event and raw body read from PostgreSQL, traced, checked, every field's lineage built), with the
  revision already compiled; the one-off compilation of a stored revision is printed apart;
* **uses**: ``crosswalk_uses`` (channels.csv row 2) and ``source_path_uses`` (``order.channel``)
  over the last 10,000 orders, CPU and wall time.

    .venv/bin/python bench/lineage.py [--orders 10000] [--explain 300]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from canonical.model import ServiceOrder  # noqa: E402
from saleshub.mapping.tracing import trace  # noqa: E402
from saleshub.platform.settings import Settings  # noqa: E402
from saleshub.receive.intake import InboundEvent, admit  # noqa: E402
from saleshub.runtime import HubRuntime  # noqa: E402
from saleshub.stewards.lineage import RevisionCatalogs, explain_version  # noqa: E402
from saleshub.stewards.lineage_uses import crosswalk_uses, source_path_uses  # noqa: E402
from saleshub.store import lineage as reads  # noqa: E402
from saleshub.store.embedded import EmbeddedPostgres  # noqa: E402
from tests.support.synthetic import pyxis_event  # noqa: E402

MEDIA = {".json": "application/json", ".xml": "application/xml"}


def _load(hub: HubRuntime, orders: int) -> None:
    samples = sorted(
        p for p in (ROOT / "contracts/samples").glob("*/*") if p.suffix in MEDIA and ".expected" not in p.name
    )
    events = [InboundEvent(p.parent.name, "webhook", p.read_bytes(), MEDIA[p.suffix]) for p in samples]
    events += [InboundEvent("pyxis", "webhook", pyxis_event(n), "application/json") for n in range(orders)]
    for start in range(0, len(events), 500):
        batch = events[start : start + 500]
        hub.recorder.record_batch([(e, admit(e, hub.adapters[e.system])) for e in batch])
        hub.processor().drain(timeout=600)


def _cpu(function: object, items: list[object]) -> float:
    """CPU seconds of ``function(item)`` over ``items``."""
    started = time.process_time()
    for item in items:
        function(item)  # type: ignore[operator]
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=10_000, help="synthetic Pyxis orders to store")
    parser.add_argument("--explain", type=int, default=300, help="orders to explain")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="saleshub-bench-lineage-") as scratch:
        server = EmbeddedPostgres(Path(scratch) / "pg")
        url = server.start()
        try:
            settings = Settings(database={"url": url}, mappings_dir=ROOT / "mappings")  # type: ignore[arg-type]
            hub = HubRuntime.open(settings, migrate=True)  # the first start deploys mappings/ as r1
            print(f"r{hub.mappings.revision}: recording and processing {args.orders} orders and the samples")
            _load(hub, args.orders)
            _measure(hub, args.explain)
            hub.close()
        finally:
            server.stop()


def _measure(hub: HubRuntime, how_many: int) -> None:
    catalogs = RevisionCatalogs()
    with hub.database.engine.connect() as conn:
        recent = reads.recent_order_bodies(conn, how_many)
        started = time.process_time()
        catalog = catalogs.get(conn, 1)
        compile_cpu = time.process_time() - started
        cases = []
        for row in recent:
            adapter = hub.adapters[row.source_system]
            body = bytes(row.raw_body)
            document = adapter.decode(body)
            mapping = catalog.get(
                row.source_system, adapter.mapping_name(document, adapter.classify(document))
            )
            version = reads.order_version(conn, row.hub_order_id, None)
            assert version is not None
            cases.append((adapter, mapping, body, dict(version.content), row.hub_order_id))

        def baseline(case: object) -> None:
            adapter, mapping, body, _, _ = case  # type: ignore[misc]
            mapping.apply(adapter.decode(body))

        def traced(case: object) -> None:
            adapter, mapping, body, stored, _ = case  # type: ignore[misc]
            data, errors, _ = trace(mapping.root, adapter.decode(body))
            order = ServiceOrder.model_validate(data)
            assert not errors
            assert json.loads(order.model_dump_json()) == stored

        def explained(case: object) -> None:
            lineage = explain_version(conn, catalogs, case[4])  # type: ignore[index]
            assert lineage.reproducible, lineage.reason

        rounds = 3
        base = min(_cpu(baseline, cases) for _ in range(rounds)) / len(cases)
        tracing = min(_cpu(traced, cases) for _ in range(rounds)) / len(cases)
        explain = min(_cpu(explained, cases) for _ in range(rounds)) / len(cases)
        wall = time.perf_counter()
        for case in cases:
            explained(case)
        explain_wall = (time.perf_counter() - wall) / len(cases)
        print(f"explained orders: {len(cases)} (best of {rounds} rounds; CPU of this process)")
        print(f"  map without tracing (decode + generated code + validation): {base * 1000:.3f} ms CPU/order")
        print(
            f"  map with tracing (decode + trace + validation + compare):   {tracing * 1000:.3f} ms CPU/order"
        )
        print(
            f"  orders explain end to end (PostgreSQL reads included):      {explain * 1000:.3f} ms CPU/order"
        )
        print(f"    wall time per explained order:                            {explain_wall * 1000:.3f} ms")
        print(f"  ratio trace / no trace: {tracing / base:.1f}x; explain / no trace: {explain / base:.1f}x")
        print(f"  compiling a stored revision once (cached after): {compile_cpu * 1000:.0f} ms CPU")
        for label, run in (
            ("uses channels 2", lambda: crosswalk_uses(conn, catalogs, "channels", 2, last=10_000)),
            (
                "uses --source-path order.channel",
                lambda: source_path_uses(conn, catalogs, "order.channel", last=10_000),
            ),
        ):
            cpu, wall = time.process_time(), time.perf_counter()
            report = run()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(
                f"{label} over the last {report.examined} orders: {wall:.2f} s wall, {cpu:.2f} s CPU; "
                f"{report.depending} depend ({', '.join(f'{k}: {v}' for k, v in report.by_field.items())})"
            )


if __name__ == "__main__":
    main()
