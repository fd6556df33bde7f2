"""Retention: what the hub stops keeping, and when, for the CLI (``saleshub db retention``) and the API.

Three policies, applied in this order, each in short batches (``saleshub.store.retention``), so a
run over a million orders holds no lock for long and, stopped at any point, is resumed by running
it again; a second run right after a complete one changes nothing:

1. **Raw bodies**: emptied ``raw_body_days`` after receipt, per system (``raw_body_days_by_system``).
   The event row stays: ids, hashes, statuses, errors (the audit trail).
2. **Personal data**: a closed order (``canonical.enums.CLOSED_ORDER_STATUSES``) last changed
   ``personal_years`` ago is crypto-shredded as a data subject's erasure is
   (``saleshub.store.erasure``): its data keys destroyed, its blind-index entries and customer
   records deleted, ``erased_at`` set; its facts stay. Each batch is one erasure in the register
   (subject and reason ``retention``) and one ``customer_erased`` event listing its orders, so
   downstream systems drop them too, in the same transaction.
3. **Facts**: a closed order last changed ``facts_years`` ago is deleted with its versions (any not
   yet crypto-shredded is first, as in 2). Its events stay, the audit trail, with their raw bodies
   long emptied by 1 and their data keys destroyed by 2. No event announces the deletion: each
   downstream system applies its own legal period.

Then published outbox rows older than ``outbox_days`` are deleted (``saleshub.store.outbox``).
An open order is never touched, however old. A run that changed anything is recorded in the
operator-action trail with its counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import Connection, Engine

from saleshub.actions.privacy import erase_and_announce
from saleshub.errors import InvalidRequestError
from saleshub.platform.settings import RetentionSettings
from saleshub.publish.outbox import Outbox
from saleshub.store import queries
from saleshub.store.audit import Actor, record_action
from saleshub.store.erasure import orders_subject
from saleshub.store.failures import database_errors
from saleshub.store.outbox import purge_published
from saleshub.store.retention import (
    OrderPosition,
    RawBodyPosition,
    closed_orders,
    closed_orders_by_system,
    delete_orders,
    event_systems,
    purge_raw_bodies,
    raw_bodies_before,
)

__all__ = [
    "POLICIES",
    "RETENTION",
    "Progress",
    "RetentionPlan",
    "RetentionReport",
    "apply_retention",
    "plan_from",
]

#: The policies, in the order they are applied (the report's keys).
POLICIES: Final = ("raw_bodies", "personal_data", "facts")
#: The subject and reason of retention's erasures in the register.
RETENTION: Final = "retention"

#: Called after each committed batch with the policy and how many rows or orders it handled.
Progress = Callable[[str, int], None]


def _years_before(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:  # 29 February, into a year without one
        return moment.replace(year=moment.year - years, day=28)


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """The periods a run applies: the settings, with a run's overrides."""

    raw_body_days: int
    raw_body_days_by_system: Mapping[str, int]
    personal_years: int
    facts_years: int
    outbox_days: int
    batch_size: int

    def raw_body_cutoff(self, system: str, now: datetime) -> datetime:
        """Raw bodies of ``system`` received before this are emptied."""
        return now - timedelta(days=self.raw_body_days_by_system.get(system, self.raw_body_days))


def plan_from(
    settings: RetentionSettings,
    *,
    raw_body_days: int | None = None,
    raw_body_days_by_system: Mapping[str, int] | None = None,
    personal_years: int | None = None,
    facts_years: int | None = None,
    outbox_days: int | None = None,
    batch_size: int | None = None,
) -> RetentionPlan:
    """The settings' plan, each given value overriding its setting (a system's days add to theirs)."""
    plan = RetentionPlan(
        raw_body_days=settings.raw_body_days if raw_body_days is None else raw_body_days,
        raw_body_days_by_system={**settings.raw_body_days_by_system, **(raw_body_days_by_system or {})},
        personal_years=settings.personal_years if personal_years is None else personal_years,
        facts_years=settings.facts_years if facts_years is None else facts_years,
        outbox_days=settings.outbox_days if outbox_days is None else outbox_days,
        batch_size=settings.batch_size if batch_size is None else batch_size,
    )
    short = {name: value for name, value in _periods(plan).items() if value < 1}
    if short:
        raise InvalidRequestError(
            "every retention period is at least 1: " + ", ".join(f"{k} {v}" for k, v in sorted(short.items()))
        )
    if plan.facts_years < plan.personal_years:
        raise InvalidRequestError(
            f"facts are kept at least as long as personal data: facts years {plan.facts_years} < "
            f"personal years {plan.personal_years}"
        )
    return plan


def _periods(plan: RetentionPlan) -> dict[str, int]:
    return {
        "raw body days": plan.raw_body_days,
        **{f"raw body days of {s}": d for s, d in plan.raw_body_days_by_system.items()},
        "personal years": plan.personal_years,
        "facts years": plan.facts_years,
        "outbox days": plan.outbox_days,
        "batch size": plan.batch_size,
    }


@dataclass(slots=True)
class RetentionReport:
    """Per policy (``POLICIES``) and system, what a run did, or with ``dry_run`` would do."""

    dry_run: bool
    now: datetime
    plan: RetentionPlan
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: {p: {} for p in POLICIES})
    outbox_rows: int = 0
    erasure_ids: list[int] = field(default_factory=list)

    def total(self, policy: str) -> int:
        """Rows or orders of ``policy`` over every system."""
        return sum(self.counts[policy].values())

    def personal_cutoff(self) -> datetime:
        """Closed orders last changed before this lose their personal data."""
        return _years_before(self.now, self.plan.personal_years)

    def facts_cutoff(self) -> datetime:
        """Closed orders last changed before this are deleted."""
        return _years_before(self.now, self.plan.facts_years)

    def summary(self) -> dict[str, object]:
        """Counts per policy and system, for the operator-action trail."""
        return {
            **{policy: dict(self.counts[policy]) for policy in POLICIES},
            "outbox_rows": self.outbox_rows,
            "erasures": list(self.erasure_ids),
        }


def _add(counts: dict[str, int], system: str, count: int) -> None:
    if count:
        counts[system] = counts.get(system, 0) + count


def apply_retention(
    engine: Engine,
    plan: RetentionPlan,
    *,
    actor: Actor,
    outbox: Outbox,
    dry_run: bool,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> RetentionReport:
    """Apply the three policies and the outbox's (see the module docstring); with ``dry_run``, count only."""
    report = RetentionReport(dry_run, now or datetime.now(UTC), plan)
    tick = progress or (lambda _policy, _count: None)
    with database_errors():
        with engine.connect() as conn:
            known = queries.registered_systems(conn)
        unknown = sorted(set(plan.raw_body_days_by_system) - known)
        if unknown:  # a typo would keep that system's bodies for the default period, silently
            raise InvalidRequestError(
                f"no sales system {', '.join(map(repr, unknown))} in this hub; the systems are "
                f"{', '.join(sorted(known))}"
            )
        if dry_run:
            _count(engine, report)
            return report
        _raw_bodies(engine, report, tick)
        _personal_data(engine, report, outbox, tick)
        _facts(engine, report, outbox, tick)
        with engine.begin() as conn:
            report.outbox_rows = purge_published(conn, keep_days=plan.outbox_days)
            if any(report.total(policy) for policy in POLICIES) or report.outbox_rows:
                record_action(conn, actor, "db.retention", "retention", RETENTION, None, report.summary())
    return report


def _count(engine: Engine, report: RetentionReport) -> None:
    """What a run would do now: policies 2 and 3 both count an order in both periods."""
    with engine.connect() as conn:
        for system in event_systems(conn):
            cutoff = report.plan.raw_body_cutoff(system, report.now)
            _add(report.counts["raw_bodies"], system, raw_bodies_before(conn, system, cutoff))
        report.counts["personal_data"] = closed_orders_by_system(conn, report.personal_cutoff(), erased=False)
        report.counts["facts"] = closed_orders_by_system(conn, report.facts_cutoff(), erased=None)
        report.outbox_rows = purge_published(conn, keep_days=report.plan.outbox_days, dry_run=True)


def _raw_bodies(engine: Engine, report: RetentionReport, tick: Progress) -> None:
    with engine.connect() as conn:
        systems = event_systems(conn)
    for system in systems:
        cutoff = report.plan.raw_body_cutoff(system, report.now)
        position = RawBodyPosition()
        while True:
            with engine.begin() as conn:
                count, position = purge_raw_bodies(conn, system, cutoff, position, report.plan.batch_size)
            if not count:
                break
            _add(report.counts["raw_bodies"], system, count)
            tick("raw_bodies", count)


def _shred(conn: Connection, report: RetentionReport, outbox: Outbox, order_ids: list[uuid.UUID]) -> None:
    """Crypto-shred the orders as one erasure: keys destroyed, registered, announced."""
    if not order_ids:
        return
    subject = orders_subject(conn, order_ids)
    cutoff = f"closed_before:{report.personal_cutoff():%Y-%m-%d}"
    erasure_id, _ = erase_and_announce(
        conn, subject, outbox, by=RETENTION, reason=RETENTION, criteria=[cutoff]
    )
    report.erasure_ids.append(erasure_id)
    for order in subject.orders:
        _add(report.counts["personal_data"], order.source_system, 1)


def _personal_data(engine: Engine, report: RetentionReport, outbox: Outbox, tick: Progress) -> None:
    cutoff, position = report.personal_cutoff(), OrderPosition()
    while True:
        with engine.begin() as conn:
            orders, position = closed_orders(conn, cutoff, position, report.plan.batch_size, erased=False)
            _shred(conn, report, outbox, [order.hub_order_id for order in orders])
        if not orders:
            break
        tick("personal_data", len(orders))


def _facts(engine: Engine, report: RetentionReport, outbox: Outbox, tick: Progress) -> None:
    cutoff, position = report.facts_cutoff(), OrderPosition()
    while True:
        with engine.begin() as conn:
            orders, position = closed_orders(conn, cutoff, position, report.plan.batch_size, erased=None)
            # Policy 2 shredded these a moment ago, but for one it skipped (a processor held it
            # then): an order's personal data is destroyed before its facts go, always.
            _shred(conn, report, outbox, [order.hub_order_id for order in orders if not order.erased])
            delete_orders(conn, [order.hub_order_id for order in orders])
        if not orders:
            break
        for order in orders:
            _add(report.counts["facts"], order.source_system, 1)
        tick("facts", len(orders))
