"""The platform's operational figures for a window, per system, country, business unit and channel.

Orders created and updated, the integration error rate per system (quarantined / received events,
against the platform's 1% line: events carry no tenancy until mapped, so the rate is per system),
the time from the source's update of an order to the hub's commit of it (median and 95th
percentile), orders by channel, customers seen in several channels or systems (from customer
linking), and the longest-open discrepancy of each system's latest run. Served as
``saleshub report ops`` (table, JSON for dashboards, HTML) and kept with each cross-system run.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import Connection

from reconciliation.cross_model import (
    CustomerFigures,
    OldestDiscrepancy,
    OperationalFigures,
    SystemErrors,
    TenancyRow,
)
from reconciliation.model import ERROR_RATE_LINE, Window
from saleshub.store import linking as linking_store
from saleshub.store import operations as store

__all__ = ["operational_figures"]


def operational_figures(
    conn: Connection, window: Window, *, now: datetime | None = None, run_id: uuid.UUID | None = None
) -> OperationalFigures:
    """The figures of ``window`` (customers and open discrepancies as they stand now).

    ``run_id``: the cross-system run computing them, whose conflicts count as open.
    """
    tenancy = [
        TenancyRow(
            source_system=row.source_system,
            country_code=row.country_code,
            bu_code=row.bu_code,
            sales_channel=row.sales_channel,
            orders_created=row.orders_created,
            orders_updated=row.orders_updated,
            latency_median_seconds=row.latency_median,
            latency_p95_seconds=row.latency_p95,
        )
        for row in store.order_figures(conn, window.start, window.end)
    ]
    channels: Counter[str] = Counter()
    for row in tenancy:
        channels[row.sales_channel] += row.orders_created
    errors = []
    for system, (received, quarantined) in store.error_counts_by_system(
        conn, window.start, window.end
    ).items():
        rate = quarantined / received if received else None
        errors.append(
            SystemErrors(
                source_system=system,
                received=received,
                quarantined=quarantined,
                error_rate=rate,
                above_line=rate is not None and rate > ERROR_RATE_LINE,
            )
        )
    counts = linking_store.customer_counts(conn)
    return OperationalFigures(
        window=window,
        generated_at=now or datetime.now(UTC),
        tenancy=tenancy,
        errors=errors,
        orders_by_channel=dict(sorted(channels.items())),
        customers=CustomerFigures.model_validate(counts),
        oldest_open=[
            OldestDiscrepancy(
                source_system=row["source_system"],
                kind=row["kind"],
                order=row["order_ref"],
                first_seen_at=row["first_seen_at"],
                open=row["open"],
            )
            for row in store.oldest_open_discrepancies(conn, current=run_id)
        ],
    )
