"""The stewards' reconciliation rules (``mappings/reconciliation.yaml``): loaded, checked, with file:line.

The file sets, for every system or for one: the grace period (orders updated more recently are left
out of a run), the per-field comparison rules (amount tolerance, equivalent statuses, time
tolerance, fields to ignore) and how the system's manifest names its order key. Every problem is
reported at once with its line, like the mapping files (``saleshub mappings validate``).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from canonical.enums import OrderStatus
from canonical.model import ServiceOrder
from reconciliation.steward_files import load_steward_file
from saleshub.errors import LoadIssue, MappingLoadError

__all__ = [
    "RULES_FILE",
    "FieldRules",
    "ManifestColumns",
    "ReconciliationRules",
    "SystemRules",
    "load_rules",
]

#: The rules file's name inside the mappings directory.
RULES_FILE = "reconciliation.yaml"


def _check_field_names(names: list[str]) -> list[str]:
    known = set(ServiceOrder.model_fields)
    unknown = [name for name in names if name.split(".", 1)[0] not in known]
    if unknown:
        raise ValueError(f"not canonical fields: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return names


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ManifestColumns(_Strict):
    """Which columns of a system's manifest (CSV header or JSON keys) hold the order key."""

    key_columns: Annotated[list[str], Field(min_length=1)] = ["external_order_id"]
    key_separator: str = ":"


class FieldRules(_Strict):
    """How two canonical orders are compared field by field."""

    amount_tolerance: Annotated[Decimal, Field(ge=0)] = Decimal(0)
    time_tolerance_seconds: Annotated[int, Field(ge=0, le=86_400)] = 0
    status_equivalences: list[list[OrderStatus]] = []
    ignore_fields: list[str] = []

    @field_validator("ignore_fields")
    @classmethod
    def _known_fields(cls, names: list[str]) -> list[str]:
        return _check_field_names(names)

    @property
    def time_tolerance(self) -> timedelta:
        """The time tolerance as a duration."""
        return timedelta(seconds=self.time_tolerance_seconds)

    def same_status(self, hub: str, source: str) -> bool:
        """Whether two status codes are equal or declared equivalent."""
        return hub == source or any(
            {hub, source} <= {s.value for s in group} for group in self.status_equivalences
        )


class SystemRules(FieldRules):
    """Everything a run of one system uses."""

    grace_period_minutes: Annotated[int, Field(ge=0, le=7 * 24 * 60)] = 30
    manifest: ManifestColumns = ManifestColumns()

    @property
    def grace_period(self) -> timedelta:
        """The grace period as a duration."""
        return timedelta(minutes=self.grace_period_minutes)


class _SystemOverride(_Strict):
    amount_tolerance: Annotated[Decimal, Field(ge=0)] | None = None
    time_tolerance_seconds: Annotated[int, Field(ge=0, le=86_400)] | None = None
    status_equivalences: list[list[OrderStatus]] | None = None
    ignore_fields: list[str] | None = None
    grace_period_minutes: Annotated[int, Field(ge=0, le=7 * 24 * 60)] | None = None
    manifest: ManifestColumns | None = None

    @field_validator("ignore_fields")
    @classmethod
    def _known_fields(cls, names: list[str] | None) -> list[str] | None:
        return None if names is None else _check_field_names(names)


class ReconciliationRules(_Strict):
    """The whole file: a format version, defaults, and per-system overrides."""

    version: int = Field(ge=1, le=1)
    defaults: SystemRules = SystemRules()
    systems: dict[str, _SystemOverride] = {}

    def for_system(self, system: str) -> SystemRules:
        """The defaults with the system's overrides applied (and checked again)."""
        override = self.systems.get(system)
        if override is None:
            return self.defaults
        merged = self.defaults.model_dump() | override.model_dump(exclude_none=True)
        return SystemRules.model_validate(merged)


def load_rules(mappings_dir: Path) -> ReconciliationRules:
    """Load ``reconciliation.yaml`` from ``mappings_dir`` (defaults when absent).

    Raises ``MappingLoadError`` listing every problem with file:line.
    """
    loaded = load_steward_file(mappings_dir, RULES_FILE, ReconciliationRules)
    if loaded is None:
        return ReconciliationRules(version=1)
    rules, located, file = loaded.value, loaded.located, loaded.file
    problems: list[LoadIssue] = []
    for system in rules.systems:  # each merged system must still be valid
        try:
            rules.for_system(system)
        except ValidationError as exc:
            problems += [
                LoadIssue(file, located.line_of(("systems", system)), f"systems.{system}", e["msg"])
                for e in exc.errors()
            ]
    if problems:
        raise MappingLoadError(problems)
    return rules
