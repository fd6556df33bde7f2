"""The HTML report's "look at first" list: what a steward acts on first, and where each order is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciliation.model import FieldDifference, Finding, Kind, ReconciliationReport
from reconciliation.reports.render import worst_findings

OLD = datetime(2026, 11, 1, tzinfo=UTC)


def finding(key: str, kind: Kind, *fields: str, age_days: int = 0) -> Finding:
    return Finding(
        kind=kind,
        external_order_id=key,
        country_code="ES",
        sales_channel="ONLINE",
        field_differences=[FieldDifference(field=f, hub="1", source="2", rule="exact") for f in fields],
        first_seen_at=OLD + timedelta(days=30 - age_days),
    )


def test_amounts_and_field_differences_come_before_age() -> None:
    findings = [
        finding("missing-old", Kind.MISSING_IN_HUB, age_days=20),
        finding("missing-new", Kind.MISSING_IN_HUB),
        finding("status", Kind.CONTENT_MISMATCH, "status", age_days=1),
        finding("amount-new", Kind.CONTENT_MISMATCH, "totals.gross_amount"),
        finding("amount-old", Kind.CONTENT_MISMATCH, "lines[1].unit_price", "status", age_days=5),
    ]
    report = ReconciliationReport.model_construct(findings=findings)
    ranked = [f.external_order_id for f in worst_findings(report)]
    assert ranked == ["amount-old", "amount-new", "status", "missing-old", "missing-new"]
