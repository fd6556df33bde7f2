"""The nightly reconciliation inside ``saleshub serve``: an APScheduler cron job per configured source.

The composition root builds one ``NightlyReconciliation`` with the database engine, the rules and a
``SourceManifestReader`` per system, and adds it to its scheduler with ``add_nightly_job``;
``schedule_api_nightly`` does both for ``saleshub serve``: an ``ApiManifestReader`` per system of
``pollers.systems``, on the pollers' scheduler (in an executor of its own, so a long run never holds
up a poll) at ``pollers.reconcile_at``. Each
night the job reconciles the previous UTC day of every system, one after the other; a failing
system is logged (its run is stored as ``failed``) and the others still run. Given the stewards'
cross-references, it then runs the day across systems (``reconciliation.across``): conflicts
between systems, incremental customer linking of the day's new orders, the operational figures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from reconciliation.across import reconcile_across
from reconciliation.api import ApiManifestReader
from reconciliation.crossrefs import CrossReferences
from reconciliation.engine import reconcile
from reconciliation.model import Window
from reconciliation.rules import ReconciliationRules, load_rules
from reconciliation.sources import SourceManifestReader
from saleshub.errors import SalesHubError
from saleshub.platform.settings import Settings
from saleshub.store.cross_system import CROSS_SYSTEM

__all__ = [
    "EXECUTOR",
    "JOB_ID",
    "NightlyReconciliation",
    "ReaderOf",
    "add_nightly_job",
    "api_nightly",
    "previous_day",
    "schedule_api_nightly",
]

JOB_ID = "reconciliation-nightly"
#: The scheduler's executor the nightly job runs in.
EXECUTOR = "reconciliation"
_log = logging.getLogger(__name__)


def previous_day(now: datetime) -> Window:
    """The UTC day before ``now``: from its midnight to the next."""
    end = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return Window(start=end - timedelta(days=1), end=end)


@dataclass
class NightlyReconciliation:
    """Reconcile the previous day of every system that has a manifest reader."""

    engine: Engine
    rules: ReconciliationRules
    readers: Mapping[str, SourceManifestReader]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    references: CrossReferences | None = None  # also run across systems when given

    def __call__(self) -> dict[str, str]:
        """Run every system; ``{system: run id, or the error}``."""
        window = previous_day(self.clock())
        outcome: dict[str, str] = {}
        for system, reader in sorted(self.readers.items()):
            try:
                run_id = reconcile(self.engine, reader, window, self.rules.for_system(system))
            except SalesHubError as exc:
                _log.error("nightly reconciliation of %s failed: %s", system, exc)
                outcome[system] = f"failed: {exc}"
                continue
            _log.info("nightly reconciliation of %s: run %s", system, run_id)
            outcome[system] = str(run_id)
        if self.references is not None:
            try:
                run_id = reconcile_across(self.engine, self.references, window)
            except SalesHubError as exc:
                _log.error("nightly reconciliation across systems failed: %s", exc)
                outcome[CROSS_SYSTEM] = f"failed: {exc}"
            else:
                outcome[CROSS_SYSTEM] = str(run_id)
        return outcome


def add_nightly_job(
    scheduler: BaseScheduler,
    job: NightlyReconciliation,
    *,
    hour: int = 2,
    minute: int = 30,
    executor: str = "default",
) -> None:
    """Schedule ``job`` every day at ``hour:minute`` UTC (one instance at a time, late runs coalesced)."""
    scheduler.add_job(
        job,
        CronTrigger(hour=hour, minute=minute, timezone=UTC),
        executor=executor,
        id=JOB_ID,
        name="nightly reconciliation",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=3600,
    )


#: The API reader of a polled system (``saleshub.actions.reconciliation.api_reader`` in the hub).
ReaderOf = Callable[[str], ApiManifestReader]


def api_nightly(
    settings: Settings, engine: Engine, reader_of: ReaderOf, clock: Callable[[], datetime] | None = None
) -> NightlyReconciliation:
    """The nightly job of every polled system, each read from its API (the rules loaded now)."""
    readers: dict[str, SourceManifestReader] = {
        system: reader_of(system) for system in sorted(settings.pollers.systems)
    }
    rules = load_rules(settings.mappings_dir)
    if clock is None:
        return NightlyReconciliation(engine, rules, readers)
    return NightlyReconciliation(engine, rules, readers, clock)


def schedule_api_nightly(
    settings: Settings, engine: Engine, reader_of: ReaderOf, scheduler: BaseScheduler
) -> NightlyReconciliation | None:
    """Add ``api_nightly`` to ``scheduler`` at ``pollers.reconcile_at``; ``None`` if off or none polled."""
    at = settings.pollers.reconcile_time()
    if at is None or not settings.pollers.systems:
        return None
    job = api_nightly(settings, engine, reader_of)
    scheduler.add_executor(ThreadPoolExecutor(1), alias=EXECUTOR)
    add_nightly_job(scheduler, job, hour=at[0], minute=at[1], executor=EXECUTOR)
    _log.info("nightly reconciliation of %s at %02d:%02d UTC", ", ".join(sorted(job.readers)), *at)
    return job
