"""Monthly partitions of the integration-event table.

Partitions are named ``sales_system_integration_events_YYYYMM`` and cover one calendar month in UTC.
``ensure_partitions`` creates the current month and ``PARTITION_MONTHS_AHEAD`` following ones; it is
DDL, run by ``saleshub db upgrade`` as the owner role (and by ``saleshub serve`` only when the hub
logs in as the owner, as with the embedded PostgreSQL). A hub whose runtime user is leased never
creates one: ``uncovered_months`` tells it which months of the next ``PARTITION_MONTHS_CHECKED`` lack
their partition, so it can say what to run. Events outside every monthly partition land in the
DEFAULT partition, so an insert never fails for want of a partition, and ``saleshub status``
reports such rows.

Retention (``saleshub.store.retention``) empties old raw bodies row by row, per system; the space
is reclaimed by PostgreSQL's vacuum. It never deletes an event row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection, text

__all__ = [
    "PARENT",
    "PARTITION_MONTHS_AHEAD",
    "PARTITION_MONTHS_CHECKED",
    "PartitionInfo",
    "ensure_partitions",
    "list_partitions",
    "month_start",
    "uncovered_message",
    "uncovered_months",
]

PARENT = "sales_system_integration_events"
#: Months after the current one that ``saleshub db upgrade`` creates partitions for.
PARTITION_MONTHS_AHEAD = 6
#: Months after the current one a start checks: fewer left says to run ``saleshub db upgrade``.
PARTITION_MONTHS_CHECKED = 3
_NAME = re.compile(rf"^{PARENT}_(\d{{4}})(\d{{2}})$")


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One monthly partition: its rows, and how many still keep their raw body."""

    name: str
    month: date
    rows: int
    rows_with_body: int


def month_start(day: date, shift: int = 0) -> date:
    """The first day of ``day``'s month, moved by ``shift`` months."""
    index = day.year * 12 + day.month - 1 + shift
    return date(index // 12, index % 12 + 1, 1)


def _name(month: date) -> str:
    return f"{PARENT}_{month:%Y%m}"


def uncovered_months(
    connection: Connection, *, now: datetime | None = None, ahead: int = PARTITION_MONTHS_CHECKED
) -> list[date]:
    """The months from the current one to ``ahead`` after it that have no partition."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    existing = {info.month for info in list_partitions(connection, count_rows=False)}
    return [month for shift in range(ahead + 1) if (month := month_start(today, shift)) not in existing]


def uncovered_message(missing: list[date], *, now: datetime | None = None) -> str:
    """What to tell an operator about ``missing`` months (from ``uncovered_months``), and what to run."""
    today = month_start((now or datetime.now(UTC)).astimezone(UTC).date())
    months = ", ".join(f"{month:%Y-%m}" for month in missing)
    run = (
        "run `saleshub db upgrade` with the owner's credentials (secret database/owner): it creates "
        f"the partitions {PARTITION_MONTHS_AHEAD} months ahead; this hub's user creates none"
    )
    if missing[0] == today:
        return f"no event partition for {months}: their events go to the DEFAULT partition; {run}"
    last = month_start(missing[0], -1)
    return f"the event partitions end with {last:%Y-%m} ({months} have none yet); before then, {run}"


def ensure_partitions(
    connection: Connection, *, now: datetime | None = None, ahead: int = PARTITION_MONTHS_AHEAD
) -> list[str]:
    """Create the current month's partition and ``ahead`` following ones; the names created."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    existing = {info.name for info in list_partitions(connection, count_rows=False)}
    created: list[str] = []
    for shift in range(0, ahead + 1):
        start = month_start(today, shift)
        name = _name(start)
        if name in existing:
            continue
        # Identifiers and bounds come from dates we computed, never from input.
        connection.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {PARENT} "
                f"FOR VALUES FROM ('{start.isoformat()} 00:00:00+00') "
                f"TO ('{month_start(start, 1).isoformat()} 00:00:00+00')"
            )
        )
        created.append(name)
    return created


def list_partitions(connection: Connection, *, count_rows: bool = True) -> list[PartitionInfo]:
    """The monthly partitions, oldest first (the DEFAULT partition is not listed)."""
    names = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :parent"
        ),
        {"parent": PARENT},
    ).scalars()
    found: list[PartitionInfo] = []
    for name in sorted(names):
        match = _NAME.match(name)
        if match is None:
            continue
        rows = with_body = 0
        if count_rows:
            rows, with_body = connection.execute(
                text(f"SELECT count(*), count(raw_body) FROM {name}")  # name matched _NAME above
            ).one()
        found.append(PartitionInfo(name, date(int(match[1]), int(match[2]), 1), rows, with_body))
    return found
