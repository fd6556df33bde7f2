"""The operational figures' reads: orders and their latency by tenancy, error counts, oldest discrepancy.

Every function reads a time window ``[start, end)`` (except the open discrepancies, which are the
latest runs' state) and returns plain values; ``reconciliation.operations`` assembles them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

__all__ = ["TenancyFigures", "error_counts_by_system", "oldest_open_discrepancies", "order_figures"]


@dataclass(frozen=True, slots=True)
class TenancyFigures:
    """One system × country × business unit × channel: orders and source-to-hub latency (seconds)."""

    source_system: str
    country_code: str
    bu_code: str
    sales_channel: str
    orders_created: int
    orders_updated: int
    latency_median: float | None
    latency_p95: float | None


_LATENCY = "extract(epoch FROM e.processed_at - o.source_updated_at)"


def order_figures(conn: Connection, start: datetime, end: datetime) -> list[TenancyFigures]:
    """Orders created and updated in the window by tenancy, with the latency of their last update.

    Created: the order's first version was written in the window. Updated: its last version was
    written in the window and is not its first (``updated_at`` is the last version's time).

    The latency is the time from the source's update of the order (``source_updated_at``) to the
    commit of the event that brought it (``processed_at`` of the order's last event).
    """
    rows = conn.execute(
        text(
            "SELECT o.source_system, o.country_code, o.bu_code, o.sales_channel, "
            "count(*) FILTER (WHERE o.created_at >= :start), count(*) FILTER (WHERE o.version_no > 1), "
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {_LATENCY}), "
            f"percentile_cont(0.95) WITHIN GROUP (ORDER BY {_LATENCY}) "
            "FROM service_orders o "
            "LEFT JOIN sales_system_integration_events e ON e.event_id = o.last_event_id "
            "AND e.received_at <= o.updated_at "
            "WHERE o.updated_at >= :start AND o.updated_at < :end GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        ),
        {"start": start, "end": end},
    )
    return [
        TenancyFigures(s, c, b, ch, int(created), int(updated), _seconds(p50), _seconds(p95))
        for s, c, b, ch, created, updated, p50, p95 in rows
    ]


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def error_counts_by_system(
    conn: Connection, start: datetime, end: datetime, *, system: str | None = None
) -> dict[str, tuple[int, int]]:
    """``{system: (received, quarantined)}`` of the events received in the window (replays left out).

    Quarantined counts those still quarantined or failed (not superseded by a successful replay).
    ``system`` limits the count to that one system.
    """
    rows = conn.execute(
        text(
            "SELECT source_system, count(*), count(*) FILTER (WHERE status IN ('quarantined', 'failed') "
            "AND superseded_by IS NULL) FROM sales_system_integration_events "
            "WHERE received_at >= :start AND received_at < :end AND transport <> 'replay' "
            "AND (CAST(:system AS text) IS NULL OR source_system = :system) "
            "GROUP BY source_system ORDER BY source_system"
        ),
        {"start": start, "end": end, "system": system},
    )
    return {system: (int(received), int(bad)) for system, received, bad in rows}


def oldest_open_discrepancies(conn: Connection, *, current: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """Per system (and for cross-system conflicts), the longest-open discrepancy of its latest run.

    ``current`` is a run still in progress that counts as completed (the run computing the figures).
    """
    rows = conn.execute(
        text(
            "WITH latest AS (SELECT DISTINCT ON (source_system) run_id, source_system "
            "  FROM reconciliation_runs WHERE status = 'completed' OR run_id = :current "
            "  ORDER BY source_system, started_at DESC), "
            "open AS ("
            "  SELECT l.source_system, f.kind, f.external_order_id AS order_ref, f.first_seen_at "
            "  FROM latest l JOIN reconciliation_findings f ON f.run_id = l.run_id "
            "  WHERE f.kind <> 'invalid_manifest_row' "
            "  UNION ALL "
            "  SELECT l.source_system, 'cross_system_conflict', c.left_system || ' ' || "
            "  c.left_external_order_id || ' / ' || c.right_system || ' ' || c.right_external_order_id, "
            "  c.first_seen_at FROM latest l JOIN cross_system_conflicts c ON c.run_id = l.run_id) "
            "SELECT DISTINCT ON (source_system) source_system, kind, order_ref, first_seen_at, "
            "count(*) OVER (PARTITION BY source_system) AS open FROM open "
            "ORDER BY source_system, first_seen_at, order_ref"
        ),
        {"current": current},
    )
    return [dict(row._mapping) for row in rows]
