"""How the hub stands, as data: what ``saleshub status`` prints and the console's dashboard shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection

from reconciliation.model import ERROR_RATE_LINE
from saleshub.store import queries
from saleshub.store.events import queue_depth
from saleshub.store.mapping_revisions import LiveProcess, StoredRevision, deployed_revision, live_processes
from saleshub.store.operations import error_counts_by_system
from saleshub.store.outbox import Backlog, BrokerState, backlog, broker_state
from saleshub.store.partitions import PartitionInfo, list_partitions, uncovered_months

__all__ = ["MINUTES", "HubStatus", "hub_status", "minute_counts"]


@dataclass(frozen=True, slots=True)
class HubStatus:
    """The figures of ``saleshub status``, read in one connection."""

    counts: dict[tuple[str, str], int]
    open_problems: int
    default_partition_rows: int
    partitions: list[PartitionInfo]
    #: months ahead (of the ones the start checks) that have no event partition yet
    uncovered: list[date]
    backlog: Backlog
    queued: int
    oldest_queued: datetime | None
    broker: BrokerState
    deployed: StoredRevision | None
    running: Sequence[LiveProcess]
    #: ``{system: (received, still quarantined or failed)}`` over the window (``report ops``'s query).
    errors: dict[str, tuple[int, int]]
    #: ``{system: events received in each minute of the last hour}``, oldest minute first (the last
    #: one is the minute under way).
    per_minute: dict[str, list[int]]
    error_rate_line: float = ERROR_RATE_LINE

    def error_rates(self) -> list[tuple[str, int, float | None, bool]]:
        """Per system: received, error rate (``None`` without events), above the line or not."""
        rates = []
        for system, (received, failing) in sorted(self.errors.items()):
            rate = failing / received if received else None
            rates.append((system, received, rate, rate is not None and rate > self.error_rate_line))
        return rates

    @property
    def received_by_system(self) -> dict[str, int]:
        """Events of the last 24 hours per system, every status together."""
        totals: dict[str, int] = {}
        for (system, _), count in self.counts.items():
            totals[system] = totals.get(system, 0) + count
        return totals


#: The minutes of ``HubStatus.per_minute``.
MINUTES = 60


def minute_counts(found: dict[datetime, int], now: datetime) -> list[int]:
    """The last ``MINUTES`` minutes' counts up to ``now``'s minute, oldest first (0 without events)."""
    current = now.replace(second=0, microsecond=0)
    return [found.get(current - timedelta(minutes=back), 0) for back in range(MINUTES - 1, -1, -1)]


def hub_status(conn: Connection, *, hours: int = 24) -> HubStatus:
    """Read the status figures (events of the last ``hours``, open problems, queues, mappings)."""
    queued, oldest_queued = queue_depth(conn)
    now = datetime.now(UTC)
    since = now - timedelta(hours=hours)
    return HubStatus(
        counts=queries.event_status_counts(conn, since),
        open_problems=queries.open_problem_count(conn),
        default_partition_rows=queries.default_partition_rows(conn),
        partitions=list_partitions(conn, count_rows=False),
        uncovered=uncovered_months(conn),
        backlog=backlog(conn),
        queued=queued,
        oldest_queued=oldest_queued,
        broker=broker_state(conn),
        deployed=deployed_revision(conn),
        running=live_processes(conn, within_seconds=30),
        errors=error_counts_by_system(conn, since, now),
        per_minute={
            system: minute_counts(found, now)
            for system, found in sorted(
                queries.events_per_minute(
                    conn, now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES - 1)
                ).items()
            )
        },
    )
