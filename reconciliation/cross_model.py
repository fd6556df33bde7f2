"""The typed result of reconciliation across systems and channels, and of the operational figures.

* a ``Conflict``: one order two systems report differently, both sides field by field;
* a ``CustomerLink``: two orders' customers found to be one customer, with masked values, the
  score and the evidence for it;
* ``OperationalFigures``: orders, error rate, latency, channels, customers, oldest discrepancy;
* ``AcrossReport``: everything a cross-system run's report shows (JSON, CSV and HTML render it).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from reconciliation.model import ERROR_RATE_LINE, RunSummary, Window

__all__ = [
    "AcrossReport",
    "Conflict",
    "CustomerFigures",
    "CustomerLink",
    "LinkedRecord",
    "OldestDiscrepancy",
    "OperationalFigures",
    "OrderSide",
    "SideBySide",
    "SystemErrors",
    "TenancyRow",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrderSide(_Frozen):
    """One system's report of the order."""

    system: str
    external_order_id: str
    hub_order_id: uuid.UUID


class SideBySide(_Frozen):
    """One field on which the two systems disagree beyond the rules."""

    field: str
    left: str | None
    right: str | None
    rule: str


class Conflict(_Frozen):
    """One order reported by two systems (matched through ``reference``) whose reports disagree."""

    reference: str
    reference_value: str
    left: OrderSide
    right: OrderSide
    country_code: str | None = None
    bu_code: str | None = None
    sales_channel: str | None = None
    categories: list[str]
    differences: list[SideBySide]
    first_seen_at: datetime


class LinkedRecord(_Frozen):
    """One side of a customer link: the order it came from and its values, masked."""

    record_id: int
    source_system: str
    external_order_id: str
    sales_channel: str
    country_code: str
    cluster_id: int
    masked: dict[str, str | None]


class CustomerLink(_Frozen):
    """Two records of one customer: score, and per compared field its agreement level and weight."""

    left: LinkedRecord
    right: LinkedRecord
    match_probability: float
    match_weight: float
    evidence: dict[str, dict[str, str | float]]


class TenancyRow(_Frozen):
    """Orders of one system, country, business unit and channel, and their latency in seconds."""

    source_system: str
    country_code: str
    bu_code: str
    sales_channel: str
    orders_created: int
    orders_updated: int
    latency_median_seconds: float | None
    latency_p95_seconds: float | None


class SystemErrors(_Frozen):
    """A system's integration error rate: quarantined / received events."""

    source_system: str
    received: int
    quarantined: int
    error_rate: float | None
    above_line: bool


class CustomerFigures(_Frozen):
    """Customers (linked clusters), their records, and those seen in several channels or systems."""

    customers: int
    records: int
    cross_channel: int
    cross_system: int
    by_country: dict[str, dict[str, int]]


class OldestDiscrepancy(_Frozen):
    """The longest-open discrepancy of a system's latest run."""

    source_system: str
    kind: str
    order: str
    first_seen_at: datetime
    open: int


class OperationalFigures(_Frozen):
    """The platform's operational figures for a window."""

    window: Window
    generated_at: datetime
    error_rate_line: float = ERROR_RATE_LINE
    tenancy: list[TenancyRow]
    errors: list[SystemErrors]
    orders_by_channel: dict[str, int]
    customers: CustomerFigures
    oldest_open: list[OldestDiscrepancy]


class AcrossReport(_Frozen):
    """A cross-system run: its conflicts, the customer links it made, and the operational figures."""

    run: RunSummary
    conflicts: list[Conflict]
    conflicts_by_category: dict[str, int]
    conflicts_by_country: dict[str, int]
    links: list[CustomerLink]
    figures: OperationalFigures | None
