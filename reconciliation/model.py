"""The typed result of reconciliation: kinds of discrepancy, findings, runs, and the report's data.

Every report format (JSON, CSV, HTML) is rendered from one ``ReconciliationReport``; the store's rows
are turned into these models in ``reconciliation.reports.data``, nowhere else.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ERROR_RATE_LINE",
    "FieldDifference",
    "Finding",
    "Kind",
    "ReconciliationReport",
    "RunComparison",
    "RunSummary",
    "TrendPoint",
    "Window",
]

#: The platform's line for the integration error rate (quarantined / received events).
ERROR_RATE_LINE = 0.01


class Kind(StrEnum):
    """What a finding says about one order (the first five are the classes of the comparison)."""

    MISSING_IN_HUB = "missing_in_hub"
    MISSING_IN_SOURCE = "missing_in_source"
    HUB_STALE = "hub_stale"
    SOURCE_STALE = "source_stale"
    CONTENT_MISMATCH = "content_mismatch"
    DUPLICATE_IN_SOURCE = "duplicate_in_source"
    INVALID_MANIFEST_ROW = "invalid_manifest_row"

    @property
    def label(self) -> str:
        """A short name a business reader understands."""
        return _LABELS[self][0]

    @property
    def explanation(self) -> str:
        """One sentence on what it means and who acts on it."""
        return _LABELS[self][1]


_LABELS = {
    Kind.MISSING_IN_HUB: (
        "Missing in the hub",
        "The source sold it; the hub never recorded it. Re-send or heal from the source.",
    ),
    Kind.MISSING_IN_SOURCE: (
        "Missing in the source",
        "The hub holds an order the source does not list for this period.",
    ),
    Kind.HUB_STALE: ("Hub behind", "The source has a newer version than the hub holds."),
    Kind.SOURCE_STALE: ("Source behind", "The hub holds a newer version than the source lists."),
    Kind.CONTENT_MISMATCH: (
        "Same version, different content",
        "Both sides have the same version but disagree on its content: a mapping or data problem.",
    ),
    Kind.DUPLICATE_IN_SOURCE: (
        "Listed twice by the source",
        "The source's manifest lists this order more than once; the newest row was compared.",
    ),
    Kind.INVALID_MANIFEST_ROW: (
        "Unreadable manifest row",
        "A row of the source's manifest could not be read; the order was not compared.",
    ),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Window(_Frozen):
    """The period a run covers: orders updated at or after ``start`` and before ``end``."""

    start: datetime
    end: datetime


class FieldDifference(_Frozen):
    """One canonical field on which the hub and the source disagree beyond the steward's rules."""

    field: str
    hub: str | None
    source: str | None
    rule: str


class Finding(_Frozen):
    """One discrepancy of one order found by a run."""

    kind: Kind
    external_order_id: str
    hub_order_id: uuid.UUID | None = None
    country_code: str | None = None
    bu_code: str | None = None
    sales_channel: str | None = None
    source_version: int | None = None
    hub_version: int | None = None
    source_updated_at: datetime | None = None
    hub_updated_at: datetime | None = None
    field_differences: list[FieldDifference] = []
    detail: str | None = None
    first_seen_at: datetime


class RunSummary(_Frozen):
    """A run as listed: what it compared, when, and how many findings of each kind."""

    run_id: uuid.UUID
    source_system: str
    window: Window
    grace_seconds: int
    manifest: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]
    stats: dict[str, int]
    error: str | None = None

    @property
    def discrepancies(self) -> int:
        """Findings of every kind."""
        return sum(self.counts.values())


class TrendPoint(_Frozen):
    """One earlier (or this) run's counts, for the trend chart."""

    run_id: uuid.UUID
    started_at: datetime
    counts: dict[str, int]


class ReconciliationReport(_Frozen):
    """Everything a report shows about one run; JSON, CSV and HTML are rendered from it."""

    run: RunSummary
    findings: list[Finding]
    by_country: dict[str, dict[str, int]]
    by_business_unit: dict[str, dict[str, int]]
    by_channel: dict[str, dict[str, int]]
    trend: list[TrendPoint]
    events_received: int
    events_quarantined: int
    error_rate_line: float = ERROR_RATE_LINE

    @property
    def error_rate(self) -> float | None:
        """Quarantined / received events of the window, or ``None`` when nothing was received."""
        return self.events_quarantined / self.events_received if self.events_received else None


class RunComparison(_Frozen):
    """Run B against an earlier run A of the same system."""

    run_a: RunSummary
    run_b: RunSummary
    new: list[Finding]
    resolved: list[Finding]
    still_open: int
    oldest_open: Finding | None
