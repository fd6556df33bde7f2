"""Reports of a cross-system run and of the operational figures: JSON, CSV and self-contained HTML.

Gathered from the store in ``build_across_report``; personal data appears only masked (the links'
values go through ``reconciliation.linking.masking``). The HTML pages follow the run report's rules:
inline styles and SVG charts, no script, a Content Security Policy that loads nothing.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

from markupsafe import Markup
from sqlalchemy import Connection

from reconciliation.cross_model import (
    AcrossReport,
    Conflict,
    CustomerLink,
    LinkedRecord,
    OperationalFigures,
    OrderSide,
    SideBySide,
)
from reconciliation.history import load_run
from reconciliation.linking.masking import masked_record
from reconciliation.reports import svg
from reconciliation.reports.render import environment
from saleshub.errors import ConfigurationError
from saleshub.store import cross_system as store
from saleshub.store import linking as linking_store

__all__ = [
    "ACROSS_CSV_COLUMNS",
    "build_across_report",
    "render_across_csv",
    "render_across_html",
    "render_across_json",
    "render_ops_html",
    "render_ops_json",
]

ACROSS_CSV_COLUMNS = (
    "run_id",
    "item",
    "reference",
    "left",
    "right",
    "country_code",
    "bu_code",
    "sales_channel",
    "categories",
    "differences",
    "match_probability",
    "evidence",
    "first_seen_at",
)


def _conflict(row: dict[str, Any]) -> Conflict:
    return Conflict(
        reference=row["reference"],
        reference_value=row["reference_value"],
        left=OrderSide(
            system=row["left_system"],
            external_order_id=row["left_external_order_id"],
            hub_order_id=row["left_hub_order_id"],
        ),
        right=OrderSide(
            system=row["right_system"],
            external_order_id=row["right_external_order_id"],
            hub_order_id=row["right_hub_order_id"],
        ),
        country_code=row["country_code"],
        bu_code=row["bu_code"],
        sales_channel=row["sales_channel"],
        categories=list(row["categories"]),
        differences=[SideBySide.model_validate(d) for d in row["differences"]],
        first_seen_at=row["first_seen_at"],
    )


def _side(values: dict[str, Any]) -> LinkedRecord:
    return LinkedRecord(
        record_id=values["record_id"],
        source_system=values["source_system"],
        external_order_id=values["external_order_id"],
        sales_channel=values["sales_channel"],
        country_code=values["country_code"],
        cluster_id=values["cluster_id"],
        masked=masked_record(values),
    )


def build_across_report(conn: Connection, run_id: uuid.UUID, *, links: int = 50) -> AcrossReport:
    """The report of one cross-system run (its ``links`` weakest customer links shown)."""
    run = load_run(conn, run_id)
    if run.source_system != store.CROSS_SYSTEM:
        raise ConfigurationError(f"run {run_id} is a run of {run.source_system}, not a cross-system run")
    figures = store.run_figures(conn, run_id)
    return AcrossReport(
        run=run,
        conflicts=[_conflict(row) for row in store.conflicts(conn, run_id)],
        conflicts_by_category=store.conflict_counts_by(conn, run_id, "category"),
        conflicts_by_country=store.conflict_counts_by(conn, run_id, "country_code"),
        links=[
            CustomerLink(
                left=_side(link.left),
                right=_side(link.right),
                match_probability=link.match_probability,
                match_weight=link.match_weight,
                evidence=link.evidence,
            )
            for link in linking_store.run_links(conn, run_id, limit=links)
        ],
        figures=None if figures is None else OperationalFigures.model_validate(figures),
    )


def render_across_json(report: AcrossReport) -> str:
    """The whole report as JSON."""
    return json.dumps(json.loads(report.model_dump_json()), ensure_ascii=False, indent=2) + "\n"


def render_ops_json(figures: OperationalFigures) -> str:
    """The operational figures as JSON, for dashboards."""
    return json.dumps(json.loads(figures.model_dump_json()), ensure_ascii=False, indent=2) + "\n"


def _evidence_text(link: CustomerLink) -> str:
    return "; ".join(f"{name}: {e['level']} ({e['weight']:+})" for name, e in link.evidence.items())


def _record_text(side: LinkedRecord) -> str:
    masked = ", ".join(v for v in side.masked.values() if v)
    return f"{side.source_system} {side.external_order_id} {side.sales_channel} [{masked}]"


def render_across_csv(report: AcrossReport) -> str:
    """One row per conflict (item ``conflict``) and per customer link shown (item ``customer_link``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ACROSS_CSV_COLUMNS)
    run_id = report.run.run_id
    for c in report.conflicts:
        differences = "; ".join(f"{d.field}: {d.left} ≠ {d.right}" for d in c.differences)
        writer.writerow(
            [
                run_id,
                "conflict",
                f"{c.reference}={c.reference_value}",
                f"{c.left.system} {c.left.external_order_id}",
                f"{c.right.system} {c.right.external_order_id}",
                c.country_code or "",
                c.bu_code or "",
                c.sales_channel or "",
                " ".join(c.categories),
                differences,
                "",
                "",
                c.first_seen_at.isoformat(),
            ]
        )
    for link in report.links:
        writer.writerow(
            [
                run_id,
                "customer_link",
                "",
                _record_text(link.left),
                _record_text(link.right),
                link.left.country_code,
                "",
                f"{link.left.sales_channel}/{link.right.sales_channel}",
                "",
                "",
                f"{link.match_probability:.4f}",
                _evidence_text(link),
                "",
            ]
        )
    return buffer.getvalue()


def _ops_charts(figures: OperationalFigures) -> dict[str, Markup]:
    channels = [(name, count, "#2980b9") for name, count in figures.orders_by_channel.items()]
    gauges = "".join(
        svg.error_gauge(f"Error rate of {e.source_system}", e.error_rate, figures.error_rate_line)
        for e in figures.errors
    )
    return {
        "channels": Markup(svg.bar_chart("Orders by sales channel", channels)),
        "errors": Markup(gauges),
    }


def render_ops_html(figures: OperationalFigures) -> str:
    """The operational figures as a self-contained page."""
    return environment().get_template("ops.html.j2").render(figures=figures, ops_charts=_ops_charts(figures))


def render_across_html(report: AcrossReport) -> str:
    """The cross-system run as a self-contained page for business readers."""
    categories = [(name, count, "#8e44ad") for name, count in report.conflicts_by_category.items()]
    return (
        environment()
        .get_template("across.html.j2")
        .render(
            report=report,
            run=report.run,
            figures=report.figures,
            conflicts_chart=Markup(svg.bar_chart("Conflicts by kind of difference", categories)),
            ops_charts=None if report.figures is None else _ops_charts(report.figures),
        )
    )
