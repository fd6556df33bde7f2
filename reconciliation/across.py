"""One cross-system run: orders reported by several systems, one customer across channels, the figures.

The run's row is written first (system ``cross-system``, status ``running``); then, in one
transaction: the window's cross-system pairs are compared and the conflicts kept (each with since
when it has been open); the customers of new or changed orders are linked incrementally
(``reconciliation.linking``); the operational figures of the window are computed and kept with the
run. A failed run is rolled back and marked ``failed`` with its error, which is raised again.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import Engine

from reconciliation.cross_system import compare_pairs
from reconciliation.crossrefs import CrossReferences
from reconciliation.linking.run import LinkProgress, link_customers
from reconciliation.model import Window
from reconciliation.operations import operational_figures
from reconciliation.recorded import recorded_run
from saleshub.store import cross_system as store
from saleshub.store import runs

__all__ = ["CONFLICT", "reconcile_across"]

#: The kind counted in a cross-system run's ``counts``.
CONFLICT = "cross_system_conflict"


def _quiet(_phase: str, _count: int) -> None:
    return None


def reconcile_across(
    engine: Engine,
    references: CrossReferences,
    window: Window,
    *,
    now: datetime | None = None,
    full_relink: bool = False,
    progress: LinkProgress = _quiet,
) -> uuid.UUID:
    """Run the cross-system comparison, customer linking and figures for ``window``; the run's id."""
    started = now or datetime.now(UTC)
    with recorded_run(
        engine,
        system=store.CROSS_SYSTEM,
        window=window,
        grace_seconds=0,
        manifest="mappings/cross_references.yaml",
        started=started,
    ) as (run_id, conn):
        conflicts, pairs = compare_pairs(conn, references, window)
        progress("compared orders", pairs)
        store.record_conflicts(conn, run_id, conflicts, started, store.previous_cross_run(conn, started))
        linked = link_customers(conn, run_id=run_id, at=started, full=full_relink, progress=progress)
        figures = operational_figures(conn, window, now=started, run_id=run_id)
        categories = Counter(c for conflict in conflicts for c in conflict.categories)
        stats = {
            "cross_system_pairs": pairs,
            "cross_system_same": pairs - len(conflicts),
            **{f"conflicts_{name}": count for name, count in sorted(categories.items())},
            **linked.as_stats(),
            "customers": figures.customers.customers,
            "cross_channel_customers": figures.customers.cross_channel,
        }
        runs.finish_run(conn, run_id, {CONFLICT: len(conflicts)} if conflicts else {}, stats)
        store.set_run_figures(conn, run_id, figures.model_dump(mode="json"))
    return run_id
