"""Orders reported by more than one system: matched through the stewards' cross-references, compared.

Each declared reference becomes one key per system (``crossrefs``); the store pairs orders of
different systems with the same key value. Each pair is compared on the fields the stewards named
(``compare.fields``), under their tolerances and status equivalences, lines matched by number; a
pair that differs is a conflict, shown side by side and sorted into categories (amount, status,
dates, lines, or the field's own name).
"""

from __future__ import annotations

from sqlalchemy import Connection

from reconciliation.crossrefs import CrossReferences
from reconciliation.fields import differences_in, parse_order
from reconciliation.model import Window
from saleshub.store import cross_system as store

__all__ = ["category_of", "compare_pairs", "key_specs"]


def key_specs(references: CrossReferences) -> list[store.KeySpec]:
    """One key per (reference, system), as JSON paths into the canonical order."""
    specs = []
    for name, reference in sorted(references.references.items()):
        for system, key in sorted(reference.systems.items()):
            when = key.when
            specs.append(
                store.KeySpec(
                    reference=name,
                    system=system,
                    path=tuple(key.field.split(".")),
                    when_path=None if when is None else tuple(when.field.split(".")),
                    when_values=() if when is None else tuple(when.in_),
                )
            )
    return specs


def category_of(field: str) -> str:
    """What kind of disagreement a differing field is: amount, status, dates, lines, or its name."""
    if field.startswith("totals") or field.endswith(".unit_price"):
        return "amount"
    if field == "status":
        return "status"
    if field in ("ordered_at", "requested_window") or field.startswith("requested_window."):
        return "dates"
    if field.startswith("lines"):
        return "lines"
    return field.split(".", 1)[0]


def compare_pairs(
    conn: Connection, references: CrossReferences, window: Window
) -> tuple[list[store.ConflictRow], int]:
    """The conflicts among the window's cross-system pairs, and how many pairs were compared."""
    pairs = store.matched_orders(conn, key_specs(references), window.start, window.end)
    rules = references.compare
    found = []
    for pair in pairs:
        left, right = parse_order(pair.left["content"]), parse_order(pair.right["content"])
        if isinstance(left, str) or isinstance(right, str):
            problem = left if isinstance(left, str) else right
            differences = [{"field": "order", "left": None, "right": None, "rule": str(problem)}]
            found.append(store.ConflictRow(pair, ("unreadable",), differences))
            continue
        diffs = differences_in(left, right, rules, list(rules.fields))
        if diffs:
            rows = [{"field": d.field, "left": d.hub, "right": d.source, "rule": d.rule} for d in diffs]
            categories = tuple(sorted({category_of(d.field) for d in diffs}))
            found.append(store.ConflictRow(pair, categories, rows))
    return found, len(pairs)
