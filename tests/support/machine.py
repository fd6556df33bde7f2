"""This machine's speed, measured, for the few checks whose deadline is a CPU budget.

Machines of one kind differ up to four times in CPU speed, and CI runs on whichever one it gets. A
check that bounds the CPU an input may take derives its budget from the measured cost of similar
work on this machine (``machine_slowness``), never from a figure of another machine alone.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from functools import cache

__all__ = ["machine_slowness"]

#: The CPU time of ``_gauge_workload`` on that machine (the best of several runs).
GAUGE_REFERENCE_SECONDS = 0.011

_GAUGE_DOCUMENT = json.dumps(
    {
        "items": [
            {"id": f"ID-{n}", "price": str(Decimal(n) / 7), "tags": ["a", {"n": n}]} for n in range(15_000)
        ]
    }
)


def _gauge_workload() -> None:
    """Decoding JSON and summing decimals: what ``translate`` spends its CPU on."""
    items = json.loads(_GAUGE_DOCUMENT)["items"]
    sum((Decimal(item["price"]) for item in items), Decimal(0))


@cache
def machine_slowness() -> float:
    """How many times slower than the reference machine this one decodes (1.0 at least).

    Machines of one kind differ up to four times in CPU speed: the budget is a deadline derived from
    the measured cost of the same kind of work on this machine, so a slower machine is not taken for
    a slow input, while a pathological input (seconds to minutes) still blows it.
    """
    best = float("inf")
    for _ in range(7):
        started = time.thread_time()
        _gauge_workload()
        best = min(best, time.thread_time() - started)
    return max(1.0, best / GAUGE_REFERENCE_SECONDS)
