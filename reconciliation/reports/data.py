"""Gathering one run's report from the store: findings, counts by tenancy, trend and error rate."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection

from reconciliation.history import finding_of, list_runs, load_run
from reconciliation.model import ReconciliationReport, TrendPoint
from saleshub.store import findings, queries

__all__ = ["build_report"]


def _pivot(counts: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for (value, kind), count in sorted(counts.items()):
        table.setdefault(value, {})[kind] = count
    return table


def build_report(conn: Connection, run_id: uuid.UUID, *, trend_runs: int = 14) -> ReconciliationReport:
    """The report of one run, with the trend over the system's last ``trend_runs`` runs up to it."""
    run = load_run(conn, run_id)
    earlier = [
        r
        for r in list_runs(conn, system=run.source_system, limit=200)
        if r.status == "completed" and r.started_at <= run.started_at
    ][:trend_runs]
    received, quarantined = queries.integration_error_counts(
        conn, run.source_system, run.window.start, run.window.end
    )
    return ReconciliationReport(
        run=run,
        findings=[finding_of(row) for row in findings.findings(conn, run_id)],
        by_country=_pivot(findings.finding_counts_by(conn, run_id, "country_code")),
        by_business_unit=_pivot(findings.finding_counts_by(conn, run_id, "bu_code")),
        by_channel=_pivot(findings.finding_counts_by(conn, run_id, "sales_channel")),
        trend=[
            TrendPoint(run_id=r.run_id, started_at=r.started_at, counts=r.counts) for r in reversed(earlier)
        ],
        events_received=received,
        events_quarantined=quarantined,
    )
