"""Repeated keys: what telling a repeat from a new version costs, and recording events the hub holds.

First, in process: ``admit`` of ``--events`` synthetic ERP orders with the content digest in their
idempotency key, against the same ``admit`` with the digest replaced by a constant (best of
``--rounds``, alternating).

Then ``--events`` synthetic ERP orders are recorded once into an embedded PostgreSQL; then the same
events are recorded again in batches of ``--batch`` (every one a repeat), alternating ``--rounds``
times between:

* **the recorder**: the events holding a batch's repeated keys read in one query per system;
* **baseline**: the same recorder answering each repeated key with a query of its own (how it
  answered before).

Printed: seconds per pass and repeats/s of each (best of the rounds), and the ratio baseline /
recorder (higher is better for the recorder).

    .venv/bin/python bench/repeats.py [--events 5000] [--batch 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Connection  # noqa: E402

from adapters import erp  # noqa: E402
from saleshub.platform.settings import Settings  # noqa: E402
from saleshub.receive.intake import Admission, InboundEvent, admit  # noqa: E402
from saleshub.receive.recorder import Item, Recorder  # noqa: E402
from saleshub.runtime import HubRuntime  # noqa: E402
from saleshub.store import events as store  # noqa: E402
from tests.support.synthetic import erp_order  # noqa: E402


class OneQueryPerKey(Recorder):
    """The baseline: a repeated key answered by a query of its own."""

    @staticmethod
    def _repeats(
        conn: Connection,
        round_: list[tuple[int, InboundEvent, Admission, str]],
        rows: list[dict[str, object]],
        claimed: set[object],  # type: ignore[override]
    ) -> dict[tuple[str, str], store.EventOutcome]:
        found: dict[tuple[str, str], store.EventOutcome] = {}
        for (_, event, _, key), row in zip(round_, rows, strict=True):
            if row["receipt"].event_id not in claimed:  # type: ignore[attr-defined]
                found[event.system, key] = store.repeated_events(conn, event.system, [key])[key]
        return found


def one_pass(recorder: Recorder, items: list[Item], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(items), batch):
        receipts = recorder.record_batch(items[start : start + batch])
        if not all(receipt.repeated for receipt in receipts):
            raise SystemExit("an event was recorded twice")
    return time.perf_counter() - started


def admit_pass(items: list[Item], adapter: object) -> float:
    started = time.perf_counter()
    for event, _ in items:
        admit(event, adapter)  # type: ignore[arg-type]
    return time.perf_counter() - started


def digest_cost(items: list[Item], adapter: object, rounds: int) -> None:
    digest = erp.content_digest
    with_digest: list[float] = []
    without: list[float] = []
    try:
        for _ in range(rounds):
            erp.content_digest = digest
            with_digest.append(admit_pass(items, adapter))
            erp.content_digest = lambda document: "0"
            without.append(admit_pass(items, adapter))
    finally:
        erp.content_digest = digest
    best, base = min(with_digest), min(without)
    print(f"admit of {len(items):,} ERP orders, best of {rounds} alternating:")
    print(f"  with the content digest:         {len(items) / best:8,.0f} orders/s")
    print(f"  without (a constant):            {len(items) / base:8,.0f} orders/s")
    print(f"  digest cost:                     {(best - base) / len(items) * 1e6:6.1f} us an order")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="saleshub-bench-repeats-"))
    try:
        settings = Settings(
            database={"data_dir": workdir / "data"},
            mappings_dir=ROOT / "mappings",
        )
        hub = HubRuntime.open(settings, migrate=True)
        try:
            adapter = hub.adapters["erp"]
            items: list[Item] = []
            for number in range(1, args.events + 1):
                body = json.dumps(erp_order(number, updated_at="2026-11-18T08:45:03.000+00:00")).encode()
                event = InboundEvent("erp", "poll", body, "application/json")
                items.append((event, admit(event, adapter)))
            digest_cost(items, adapter, args.rounds)
            hub.recorder.record_batch(items)  # held from now on
            baseline = OneQueryPerKey(hub.recorder.engine, hub.recorder.outbox)
            bulk: list[float] = []
            single: list[float] = []
            for _ in range(args.rounds):
                bulk.append(one_pass(hub.recorder, items, args.batch))
                single.append(one_pass(baseline, items, args.batch))
        finally:
            hub.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    best, worst = min(bulk), min(single)
    print(f"{args.events:,} repeated events in batches of {args.batch}, best of {args.rounds} alternating:")
    print(f"  recorder (one query per batch):  {best:6.2f} s  {args.events / best:8,.0f} repeats/s")
    print(f"  baseline (one query per key):    {worst:6.2f} s  {args.events / worst:8,.0f} repeats/s")
    print(f"  baseline / recorder:             {worst / best:6.1f}x")


if __name__ == "__main__":
    main()
