"""``saleshub report``: the platform's operational figures (table, JSON for dashboards, or HTML)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from reconciliation.cross_model import OperationalFigures
from reconciliation.model import Window
from reconciliation.operations import operational_figures
from reconciliation.reports.across import render_ops_html, render_ops_json
from saleshub.commands.common import database, fail, parse_time
from saleshub.console import out

__all__ = ["ops", "report_app"]

report_app = typer.Typer(help="Reports on the hub's operation.", no_args_is_help=True)

_FORMATS = ("table", "json", "html")


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _print(figures: OperationalFigures) -> None:
    table = Table(
        "system", "country", "BU", "channel", "created", "updated", "median s", "p95 s", title="Orders"
    )
    for r in figures.tenancy:
        table.add_row(
            r.source_system,
            r.country_code,
            r.bu_code,
            r.sales_channel,
            f"{r.orders_created:,}",
            f"{r.orders_updated:,}",
            _seconds(r.latency_median_seconds),
            _seconds(r.latency_p95_seconds),
        )
    out.print(table)
    errors = Table(
        "system", "received", "quarantined", "rate", title=f"Error rate (line {figures.error_rate_line:.0%})"
    )
    for e in figures.errors:
        rate = "n/a" if e.error_rate is None else f"{e.error_rate:.2%}"
        errors.add_row(
            e.source_system,
            f"{e.received:,}",
            f"{e.quarantined:,}",
            f"[red]{rate}[/red]" if e.above_line else rate,
        )
    out.print(errors)
    c = figures.customers
    out.print(
        f"customers {c.customers:,} ({c.records:,} records): {c.cross_channel:,} in several channels, "
        f"{c.cross_system:,} in several systems"
    )
    for o in figures.oldest_open:
        out.print(
            f"oldest open in {o.source_system}: {o.order} ({o.kind}) since {o.first_seen_at:%Y-%m-%d %H:%M}"
        )


@report_app.command("ops")
def ops(
    start: Annotated[str | None, typer.Option("--from", help="window start [default: 24 hours ago]")] = None,
    end: Annotated[str | None, typer.Option("--to", help="window end [default: now]")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or html")] = "table",
    output: Annotated[Path | None, typer.Option(help="write here instead of standard output")] = None,
) -> None:
    """Orders, error rate, source-to-hub time, channels, cross-channel customers, oldest discrepancy."""
    if fmt not in _FORMATS:
        raise fail(f"--format must be one of {', '.join(_FORMATS)}; got {fmt!r}", 2)
    now = datetime.now(UTC)
    window_end = parse_time(end, "--to") if end else now
    window_start = parse_time(start, "--from") if start else (window_end or now) - timedelta(days=1)
    if window_start is None or window_end is None or window_end <= window_start:
        raise fail("--to must be after --from", 2)
    with database() as db, db.engine.connect() as conn:
        figures = operational_figures(conn, Window(start=window_start, end=window_end), now=now)
    if fmt == "table":
        _print(figures)
        return
    rendered = render_ops_json(figures) if fmt == "json" else render_ops_html(figures)
    if output is None:
        sys.stdout.write(rendered)
    else:
        output.write_text(rendered, encoding="utf-8")
        out.print(f"wrote {output}")
