"""Rendering a ``ReconciliationReport``: JSON (the whole result), CSV (one row per finding), HTML.

The HTML page is self-contained: styles inline, charts as inline SVG, no script, and a Content
Security Policy that forbids the page to load anything, so it opens offline and leaks nothing.
"""

from __future__ import annotations

import csv
import io
import json
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from reconciliation.cross_system import category_of
from reconciliation.model import Finding, Kind, ReconciliationReport
from reconciliation.reports import svg

__all__ = ["CSV_COLUMNS", "environment", "render_csv", "render_html", "render_json", "worst_findings"]

CSV_COLUMNS = (
    "run_id",
    "source_system",
    "kind",
    "kind_label",
    "external_order_id",
    "country_code",
    "bu_code",
    "sales_channel",
    "source_version",
    "hub_version",
    "source_updated_at",
    "hub_updated_at",
    "first_seen_at",
    "field_differences",
    "detail",
)

# Worst first: what the platform lacks, then what it holds wrongly, then what is only behind.
_SEVERITY = {
    Kind.MISSING_IN_HUB: 0,
    Kind.CONTENT_MISMATCH: 1,
    Kind.HUB_STALE: 2,
    Kind.MISSING_IN_SOURCE: 3,
    Kind.SOURCE_STALE: 4,
    Kind.DUPLICATE_IN_SOURCE: 5,
    Kind.INVALID_MANIFEST_ROW: 6,
}


def render_json(report: ReconciliationReport) -> str:
    """The whole report as JSON, with the error rate computed."""
    document: dict[str, Any] = json.loads(report.model_dump_json())
    document["error_rate"] = report.error_rate
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def render_csv(report: ReconciliationReport) -> str:
    """One row per finding; field differences as ``field: hub → source`` joined by ``; ``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for f in report.findings:
        differences = "; ".join(f"{d.field}: {d.hub} → {d.source}" for d in f.field_differences)
        writer.writerow(
            [
                report.run.run_id,
                report.run.source_system,
                f.kind.value,
                f.kind.label,
                f.external_order_id,
                f.country_code or "",
                f.bu_code or "",
                f.sales_channel or "",
                "" if f.source_version is None else f.source_version,
                "" if f.hub_version is None else f.hub_version,
                f.source_updated_at.isoformat() if f.source_updated_at else "",
                f.hub_updated_at.isoformat() if f.hub_updated_at else "",
                f.first_seen_at.isoformat(),
                differences,
                f.detail or "",
            ]
        )
    return buffer.getvalue()


def _needs_a_person(finding: Finding) -> int:
    """0: an amount differs; 1: another field differs; 2: nothing to read field by field."""
    fields = [d.field for d in finding.field_differences]
    if any(category_of(field) == "amount" for field in fields):
        return 0
    return 1 if fields else 2


def worst_findings(report: ReconciliationReport, limit: int = 25) -> list[Finding]:
    """The findings a steward acts on first: differing amounts, then other differing fields, then the
    rest by severity; the longest open first within each."""
    return sorted(
        report.findings,
        key=lambda f: (_needs_a_person(f), _SEVERITY[f.kind], f.first_seen_at, f.external_order_id),
    )[:limit]


@cache
def environment() -> Environment:
    """The Jinja environment of the report templates (HTML autoescaped)."""
    return Environment(
        loader=PackageLoader("reconciliation", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _charts(report: ReconciliationReport) -> dict[str, Markup]:
    counts = report.run.counts
    kinds = [
        (kind.label, counts.get(kind.value, 0), svg.KIND_COLOURS[kind.value])
        for kind in Kind
        if counts.get(kind.value, 0) or kind in list(Kind)[:5]
    ]
    trend = [(p.started_at.strftime("%d %b %H:%M"), sum(p.counts.values())) for p in report.trend]
    return {
        "kinds": Markup(svg.bar_chart("Discrepancies by kind", kinds)),
        "country": Markup(svg.stacked_bars("Discrepancies by country", report.by_country)),
        "business_unit": Markup(svg.stacked_bars("Discrepancies by business unit", report.by_business_unit)),
        "channel": Markup(svg.stacked_bars("Discrepancies by sales channel", report.by_channel)),
        "trend": Markup(svg.trend_chart("Discrepancies per run", trend)),
        "errors": Markup(
            svg.error_gauge("Integration error rate", report.error_rate, report.error_rate_line)
        ),
    }


def render_html(report: ReconciliationReport, *, worst: int = 25) -> str:
    """The self-contained HTML page for business readers."""
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            report=report,
            run=report.run,
            kinds=list(Kind),
            colours=svg.KIND_COLOURS,
            charts=_charts(report),
            worst=worst_findings(report, worst),
            total=sum(report.run.counts.values()),
            compared=report.run.stats.get("compared_manifest_rows", 0),
        )
    )
