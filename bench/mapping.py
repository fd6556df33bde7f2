"""Mapping throughput: decode + classify + map + validate, orders per second on one core.

Runs each system's golden samples (the ones that must map) through its adapter, and in the same run
the Pyxis samples through a hand-written Python mapper (bench/handwritten_pyxis.py) as the baseline.
Rounds alternate engine and baseline so that machine noise hits both alike; the best round counts.

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

from adapters.registry import AdapterRegistry  # noqa: E402
from bench.handwritten_pyxis import HandwrittenPyxisMapper  # noqa: E402
from saleshub.goldens import discover  # noqa: E402
from saleshub.mapping.catalog import MappingCatalog  # noqa: E402

TARGETS = {"pyxis": 20_000, "tempo": 10_000}


def bodies(system: str) -> list[bytes]:
    """The system's golden payloads that must map (negative samples left out)."""
    return [
        case.payload.read_bytes()
        for case in discover(ROOT / "contracts/samples", [system])
        if "order" in json.loads(case.expected.read_text(encoding="utf-8"))
    ]


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
    runs: dict[str, tuple[Callable[[bytes], object], list[bytes]]] = {
        "pyxis (engine)": (registry.create("pyxis", catalog).translate, bodies("pyxis")),
        "pyxis (hand-written)": (handwritten.map, bodies("pyxis")),
        "tempo (engine)": (registry.create("tempo", catalog).translate, bodies("tempo")),
        "erp (engine)": (registry.create("erp", catalog).translate, bodies("erp")),
    }
    best = dict.fromkeys(runs, 0.0)
    for _ in range(args.rounds):
        for name, (work, payloads) in runs.items():
            best[name] = max(best[name], rate(work, payloads, args.seconds))

    print(f"{'run':<24}{'orders/s':>12}  target")
    for name, value in best.items():
        system = name.split()[0]
        target = TARGETS.get(system) if "engine" in name else None
        verdict = f"≥ {target:,}  {'met' if value >= target else 'NOT met'}" if target else ""
        print(f"{name:<24}{value:>12,.0f}  {verdict}")
    ratio = best["pyxis (engine)"] / best["pyxis (hand-written)"]
    verdict = "met" if ratio >= 0.7 else "NOT met"
    print(f"\nengine / hand-written (pyxis): {ratio:.2f}×  target ≥ 0.70×  {verdict}")


if __name__ == "__main__":
    main()
