"""Reports of a reconciliation run, all rendered from one ``ReconciliationReport``: JSON, CSV, HTML."""

from reconciliation.reports.data import build_report
from reconciliation.reports.render import render_csv, render_html, render_json

__all__ = ["build_report", "render_csv", "render_html", "render_json"]
