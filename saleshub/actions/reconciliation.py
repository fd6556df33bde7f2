"""Reconciliation runs as an operator reads them: the newest runs, a run's report, two runs compared."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection

from reconciliation.history import compare_runs, list_runs, load_run
from reconciliation.reports import build_report, render_csv, render_html, render_json
from reconciliation.reports.across import (
    build_across_report,
    render_across_csv,
    render_across_html,
    render_across_json,
)
from saleshub.errors import InvalidRequestError
from saleshub.store.cross_system import CROSS_SYSTEM

__all__ = ["REPORT_FORMATS", "compare_runs", "list_runs", "run_report"]

#: The formats of a run's report.
REPORT_FORMATS = ("html", "json", "csv")


def run_report(conn: Connection, run_id: uuid.UUID, fmt: str) -> str:
    """A run's report as ``fmt``: a self-contained HTML page, JSON, or CSV (one row per discrepancy)."""
    if fmt not in REPORT_FORMATS:
        raise InvalidRequestError(f"a report format is one of {', '.join(REPORT_FORMATS)}; got {fmt!r}")
    if load_run(conn, run_id).source_system == CROSS_SYSTEM:
        across = build_across_report(conn, run_id)
        renderers = {"html": render_across_html, "json": render_across_json, "csv": render_across_csv}
        return renderers[fmt](across)
    return {"html": render_html, "json": render_json, "csv": render_csv}[fmt](build_report(conn, run_id))
