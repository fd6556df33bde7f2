"""Field-level differences between the hub's canonical order and the source's, under the stewards' rules.

Both sides are canonical ``ServiceOrder`` values, so differences of layout (time-zone offsets, the
scale of an amount, the order of lines) are already gone; what remains is compared field by field:
money within the amount tolerance, times within the time tolerance, statuses through the declared
equivalences, lines matched by line number. Values of personal-data fields are never copied into a
difference: it says only that they differ.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from canonical.fingerprint import FINGERPRINT_EXCLUDED_FIELDS
from canonical.model import PERSONAL_DATA_FIELDS, Money, OrderLine, ServiceOrder
from reconciliation.model import FieldDifference
from reconciliation.rules import FieldRules

__all__ = ["differences_in", "field_differences", "parse_order"]

_MASKED = "(personal data)"


def parse_order(document: dict[str, Any]) -> ServiceOrder | str:
    """The canonical order of a JSON document, or why it is not one (first problem, no values)."""
    try:
        return ServiceOrder.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "order"
        return f"not a valid canonical order: {where}: {first['msg']}"


def _shown(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, Money):
        return f"{value.amount} {value.currency}"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return str(getattr(value, "value", value))


class _Differ:
    def __init__(self, rules: FieldRules) -> None:
        self.rules = rules
        self.found: list[FieldDifference] = []

    def add(self, path: str, hub: object, source: object, rule: str) -> None:
        generic = ".".join(part.split("[", 1)[0] for part in path.split("."))
        personal = generic in PERSONAL_DATA_FIELDS
        shown_hub = _MASKED if personal and hub is not None else _shown(hub)
        shown_source = _MASKED if personal and source is not None else _shown(source)
        self.found.append(FieldDifference(field=path, hub=shown_hub, source=shown_source, rule=rule))

    def ignored(self, path: str) -> bool:
        generic = ".".join(part.split("[", 1)[0] for part in path.split("."))
        return any(generic == name or generic.startswith(name + ".") for name in self.rules.ignore_fields)

    def compare(self, path: str, hub: object, source: object) -> None:
        if self.ignored(path):
            return
        if hub is None or source is None:
            if hub is not source:
                self.add(path, hub, source, "present on one side only")
        else:
            self._values(path, hub, source)

    def _values(self, path: str, hub: object, source: object) -> None:
        if isinstance(hub, Money) and isinstance(source, Money):
            self._money(path, hub, source)
        elif isinstance(hub, datetime) and isinstance(source, datetime):
            if abs(hub - source) > self.rules.time_tolerance:
                self.add(
                    path, hub, source, f"times differ by more than {self.rules.time_tolerance_seconds} s"
                )
        elif isinstance(hub, list) and isinstance(source, list):
            self._lines(path, hub, source)
        elif isinstance(hub, BaseModel) and isinstance(source, BaseModel):
            for name in type(hub).model_fields:
                self.compare(f"{path}.{name}" if path else name, getattr(hub, name), getattr(source, name))
        elif isinstance(hub, dict) and isinstance(source, dict):
            for key in sorted(set(hub) | set(source)):
                self.compare(f"{path}.{key}", hub.get(key), source.get(key))
        elif path == "status":
            if not self.rules.same_status(str(_shown(hub)), str(_shown(source))):
                self.add(path, hub, source, "statuses differ and are not declared equivalent")
        elif hub != source:
            self.add(path, hub, source, "values differ")

    def _money(self, path: str, hub: Money, source: Money) -> None:
        if hub.currency != source.currency:
            self.add(path, hub, source, "currencies differ")
        elif abs(hub.amount - source.amount) > self.rules.amount_tolerance:
            self.add(path, hub, source, f"amounts differ by more than {self.rules.amount_tolerance}")

    def _lines(self, path: str, hub: list[Any], source: list[Any]) -> None:
        if all(isinstance(x, OrderLine) for x in hub + source):
            hub_lines = {line.line_number: line for line in hub}
            source_lines = {line.line_number: line for line in source}
            for number in sorted(set(hub_lines) | set(source_lines)):
                self.compare(f"{path}[{number}]", hub_lines.get(number), source_lines.get(number))
        elif hub != source:
            self.add(path, hub, source, "values differ")


def field_differences(hub: ServiceOrder, source: ServiceOrder, rules: FieldRules) -> list[FieldDifference]:
    """Every canonical field on which ``hub`` and ``source`` differ beyond ``rules``.

    Identity and message metadata (the fields the fingerprint leaves out) are not compared.
    """
    differ = _Differ(rules)
    for name in ServiceOrder.model_fields:
        if name not in FINGERPRINT_EXCLUDED_FIELDS:
            differ.compare(name, getattr(hub, name), getattr(source, name))
    return differ.found


def differences_in(
    hub: ServiceOrder, source: ServiceOrder, rules: FieldRules, fields: list[str]
) -> list[FieldDifference]:
    """The differences of ``hub`` and ``source`` on the named top-level ``fields`` only, under ``rules``."""
    differ = _Differ(rules)
    for name in fields:
        differ.compare(name, getattr(hub, name), getattr(source, name))
    return differ.found
