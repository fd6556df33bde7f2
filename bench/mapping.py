"""Mapping throughput: decode + classify + map + validate, orders per second on one core.

Runs each system's golden samples (the ones that must map) through its adapter, and in the same run
the Pyxis samples through a hand-written Python mapper (bench/handwritten_pyxis.py) as the baseline.
Rounds alternate engine and baseline so that machine noise hits both alike; the best round counts.

It also prints each system's *floor*: the hardened decoder plus the canonical model's validation of
the already-mapped order, with no mapping at all. No mapper, declarative or hand-written, can be
faster than its floor, so a floor under a target says the target needs a cheaper decoder or model
validation, not a faster mapping engine.

    .venv/bin/python bench/mapping.py [--seconds 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.base import SourceAdapter  # noqa: E402
from adapters.registry import AdapterRegistry  # noqa: E402
from bench.handwritten_pyxis import HandwrittenPyxisMapper  # noqa: E402
from canonical.model import ServiceOrder  # noqa: E402
from saleshub.mapping.catalog import MappingCatalog  # noqa: E402
from saleshub.stewards.goldens import discover  # noqa: E402

TARGETS = {"pyxis": 20_000, "tempo": 10_000}


def bodies(system: str) -> list[bytes]:
    """The system's golden payloads that must map (negative samples left out)."""
    return [
        case.payload.read_bytes()
        for case in discover(ROOT / "contracts/samples", [system])
        if "order" in json.loads(case.expected.read_text(encoding="utf-8"))
    ]


def floor(adapter: SourceAdapter, payloads: list[bytes]) -> Callable[[bytes], object]:
    """Decode ``body`` and validate its already-mapped canonical input: the cost without mapping."""
    mapped: dict[bytes, dict[str, object]] = {}
    for body in payloads:
        document = adapter.decode(body)
        name = adapter.mapping_name(document, adapter.classify(document))
        mapping = adapter.catalog.get(adapter.system, name)
        mapped[body] = mapping.produce(document)[0]

    def work(body: bytes) -> object:
        adapter.decode(body)
        return ServiceOrder.model_validate(mapped[body])

    return work


def rate(work: Callable[[bytes], object], payloads: list[bytes], seconds: float) -> float:
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for body in payloads:
            work(body)
        done += len(payloads)
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of one measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best counts")
    args = parser.parse_args()

    catalog = MappingCatalog.load(ROOT / "mappings")
    registry = AdapterRegistry.default()
    handwritten = HandwrittenPyxisMapper(ROOT / "mappings/crosswalks")
    systems = ("pyxis", "tempo", "erp")
    adapters = {system: registry.create(system, catalog) for system in systems}
    payloads = {system: bodies(system) for system in systems}
    runs: dict[str, tuple[Callable[[bytes], object], list[bytes]]] = {
        "pyxis (engine)": (adapters["pyxis"].translate, payloads["pyxis"]),
        "pyxis (hand-written)": (handwritten.map, payloads["pyxis"]),
        "tempo (engine)": (adapters["tempo"].translate, payloads["tempo"]),
        "erp (engine)": (adapters["erp"].translate, payloads["erp"]),
    }
    for system in ("pyxis", "tempo"):
        runs[f"{system} (floor)"] = (floor(adapters[system], payloads[system]), payloads[system])
    best = dict.fromkeys(runs, 0.0)
    for _ in range(args.rounds):
        for name, (work, samples) in runs.items():
            best[name] = max(best[name], rate(work, samples, args.seconds))

    print(f"{'run':<24}{'orders/s':>12}  target")
    for name, value in best.items():
        system = name.split()[0]
        target = TARGETS.get(system) if "engine" in name or "floor" in name else None
        if target and "floor" in name:
            reach = "within reach" if value >= target else "out of reach of any mapper"
            verdict = f"≥ {target:,}  {reach}"
        else:
            verdict = f"≥ {target:,}  {'met' if value >= target else 'NOT met'}" if target else ""
        print(f"{name:<24}{value:>12,.0f}  {verdict}")
    ratio = best["pyxis (engine)"] / best["pyxis (hand-written)"]
    verdict = "met" if ratio >= 0.7 else "NOT met"
    print(f"\nengine / hand-written (pyxis): {ratio:.2f}×  target ≥ 0.70×  {verdict}")
    print("floor = decode + canonical validation of the already-mapped order (no mapping at all)")


if __name__ == "__main__":
    main()
