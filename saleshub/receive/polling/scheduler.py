"""The pollers inside ``saleshub serve``: one APScheduler job per system of ``pollers.systems``.

``start_pollers(hub, stop)`` builds a ``Poller`` per configured system (an unknown system, one whose
adapter cannot be polled, or a bad crontab stops the start with a message naming it), schedules each
on its interval (first run at once) or crontab (hub-local time), and starts the scheduler's thread.
A job never runs twice at once in this process (``max_instances=1``; missed runs coalesce into one),
and the feed's advisory lock keeps other processes off it too. After each run the job stores the
next planned run for ``saleshub poll status``. Setting ``stop`` ends a running poll after its page;
``scheduler.shutdown()`` then waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from adapters.base import SourceAdapter
from saleshub.errors import ConfigurationError, RetriableError, UnknownAdapterError
from saleshub.platform.secrets import SecretStore
from saleshub.platform.settings import Settings, SystemPollSettings
from saleshub.platform.telemetry import Telemetry
from saleshub.receive.polling.loop import Poller
from saleshub.receive.recorder import Recorder
from saleshub.store import polling as store
from saleshub.store.database import Database
from saleshub.store.failures import database_errors

__all__ = ["DEFAULT_INTERVAL_SECONDS", "PollingHub", "build_poller", "build_pollers", "start_pollers"]

log = logging.getLogger(__name__)

#: Runs every this many seconds when a system gives neither ``interval_seconds`` nor ``cron``.
DEFAULT_INTERVAL_SECONDS = 60.0


class PollingHub(Protocol):
    """What the pollers need of the running hub (``HubRuntime`` has it)."""

    settings: Settings
    adapters: dict[str, SourceAdapter]
    database: Database
    recorder: Recorder
    secrets: SecretStore
    telemetry: Telemetry


def build_poller(hub: PollingHub, system: str, *, stop: threading.Event | None = None) -> Poller:
    """The poller of ``system`` as ``pollers.systems`` configures it.

    With ``stop``, its waits (retry backoff, rate limit) end as soon as ``stop`` is set.
    """
    configured = hub.settings.pollers.systems
    settings = configured.get(system)
    if settings is None:
        known = ", ".join(sorted(configured)) or "none"
        raise ConfigurationError(
            f"{system} is not polled: SALESHUB_POLLERS__SYSTEMS has no entry {system!r} "
            f"(polled systems: {known})"
        )
    adapter = hub.adapters.get(system)
    if adapter is None:
        raise UnknownAdapterError(system, sorted(hub.adapters))
    sleep = time.sleep if stop is None else stop.wait
    return Poller(
        adapter,
        hub.database.engine,
        hub.recorder,
        settings,
        hub.secrets,
        telemetry=hub.telemetry,
        sleep=sleep,
    )


def build_pollers(hub: PollingHub, stop: threading.Event | None = None) -> dict[str, Poller]:
    """A poller per configured system (checked all at once, before anything starts)."""
    return {system: build_poller(hub, system, stop=stop) for system in sorted(hub.settings.pollers.systems)}


def _trigger(system: str, settings: SystemPollSettings) -> CronTrigger | IntervalTrigger:
    if settings.cron is None:
        return IntervalTrigger(seconds=settings.interval_seconds or DEFAULT_INTERVAL_SECONDS)
    try:
        return CronTrigger.from_crontab(settings.cron)
    except ValueError as exc:
        raise ConfigurationError(
            f"SALESHUB_POLLERS__SYSTEMS: {system}: cron {settings.cron!r}: {exc}"
        ) from None


def start_pollers(hub: PollingHub, stop: threading.Event | None = None) -> BackgroundScheduler:
    """Schedule and start a poller per system of ``pollers.systems`` (see the module docstring)."""
    stop = stop or threading.Event()
    pollers = build_pollers(hub, stop)
    triggers = {system: _trigger(system, poller.settings) for system, poller in pollers.items()}
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max(1, len(pollers)))},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    for system, poller in pollers.items():
        first = datetime.now(UTC) if poller.settings.cron is None else None
        scheduler.add_job(
            _run,
            triggers[system],
            args=[poller, scheduler, stop],
            id=f"poll-{system}",
            name=f"poll {system}",
            **({"next_run_time": first} if first else {}),
        )
    scheduler.start()
    for system, poller in pollers.items():
        log.info(
            "polling %s at %s, %s", system, poller.settings.base_url, poller.settings.trigger_description()
        )
        _store_next_run(poller, scheduler)
    return scheduler


def _run(poller: Poller, scheduler: BackgroundScheduler, stop: threading.Event) -> None:
    result = poller.run(started_by="schedule", stop=stop)
    if result.outcome == "failed":
        log.warning("poll %s failed: %s", poller.system, result.error)
    elif result.outcome in ("skipped", "paused"):
        log.info("poll %s %s: %s", poller.system, result.outcome, result.error)
    else:
        log.info(
            "poll %s %s: %d pages, %d orders, %d new, %d refused",
            poller.system,
            result.outcome,
            result.pages,
            result.orders,
            result.recorded,
            result.errors,
        )
    _store_next_run(poller, scheduler)


def _store_next_run(poller: Poller, scheduler: BackgroundScheduler) -> None:
    job = scheduler.get_job(f"poll-{poller.system}")
    next_run: datetime | None = job.next_run_time if job is not None else None
    try:
        with database_errors(), poller.engine.begin() as conn:
            store.set_next_run(conn, poller.system, next_run)
    except RetriableError as exc:  # only the status display misses it; the schedule itself goes on
        log.warning("could not store the next run of poll %s: %s", poller.system, exc)
