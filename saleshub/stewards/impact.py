"""Impact of a mapping edit: replay stored events through a candidate mapping, write nothing.

``mapping_impact`` maps the newest stored event of each of a system's last N orders twice, with
the deployed mapping revision and with a candidate mappings directory, and counts per canonical
field how many orders would change, with a few examples each (personal-data values masked).
Orders that would start or stop failing are counted too, with their first error. This is what a
steward runs before deploying an edit.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from adapters.base import SourceAdapter
from canonical.model import is_personal_field
from saleshub.errors import DataError, FieldError, MappingError, generic_target
from saleshub.mapping.engine import MappedOrder
from saleshub.store import queries

__all__ = ["FieldChange", "ImpactReport", "flatten", "mapping_impact"]

_MAX_EXAMPLES = 3


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One example of a field whose value the candidate mapping changes."""

    external_order_id: str
    target: str
    before: str
    after: str


@dataclass
class ImpactReport:
    """What a candidate mapping would change over the sampled events."""

    system: str
    current_mapping: str | None = None
    candidate_mapping: str | None = None
    events: int = 0
    unchanged: int = 0
    changed: int = 0
    newly_failing: int = 0
    newly_mapped: int = 0
    still_failing: int = 0
    missing_body: int = 0
    field_counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[FieldChange]] = field(default_factory=lambda: defaultdict(list))
    failure_examples: list[str] = field(default_factory=list)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A JSON value as ``{"lines[0].unit_price.amount": …}`` leaves (empty containers kept)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for index, inner in enumerate(value):
            out.update(flatten(inner, f"{prefix}[{index}]"))
        return out
    return {prefix: value}


def _shown(target: str, value: Any) -> str:
    # FieldError owns the masking and shortening rules for values shown to people.
    return FieldError(target, "", "", value, personal=is_personal_field(target)).shown_value()


def _map(adapter: SourceAdapter, body: bytes) -> MappedOrder | DataError:
    try:
        return adapter.translate(body).mapped
    except DataError as exc:
        return exc


def _first_error(error: DataError) -> str:
    if isinstance(error, MappingError) and error.errors:
        return str(error.errors[0])
    return str(error).splitlines()[0]


def mapping_impact(
    conn: Connection, current: SourceAdapter, candidate: SourceAdapter, last: int
) -> ImpactReport:
    """Compare ``current`` and ``candidate`` over the newest event of each of the last ``last`` orders."""
    report = ImpactReport(current.system)
    for body in queries.recent_bodies(conn, current.system, last):
        report.events += 1
        if body is None:
            report.missing_body += 1
            continue
        before, after = _map(current, body), _map(candidate, body)
        if isinstance(before, MappedOrder):
            report.current_mapping = before.mapping.label
        if isinstance(after, MappedOrder):
            report.candidate_mapping = after.mapping.label
        _compare(report, before, after)
    return report


def _compare(report: ImpactReport, before: MappedOrder | DataError, after: MappedOrder | DataError) -> None:
    if isinstance(before, DataError) and isinstance(after, DataError):
        report.still_failing += 1
        return
    if isinstance(after, DataError):
        report.newly_failing += 1
        if len(report.failure_examples) < _MAX_EXAMPLES:
            report.failure_examples.append(_first_error(after))
        return
    if isinstance(before, DataError):
        report.newly_mapped += 1
        return
    old = flatten(before.order.model_dump(mode="json"))
    new = flatten(after.order.model_dump(mode="json"))
    changed = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    if not changed:
        report.unchanged += 1
        return
    report.changed += 1
    for generic in {generic_target(key) for key in changed}:
        report.field_counts[generic] += 1
    for key in changed:
        examples = report.examples[generic_target(key)]
        if len(examples) < _MAX_EXAMPLES:
            examples.append(
                FieldChange(
                    after.order.external_order_id, key, _shown(key, old.get(key)), _shown(key, new.get(key))
                )
            )
