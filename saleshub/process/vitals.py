"""The hub's vital signs as gauges: the processing queue and the outbox backlog, every few seconds.

``Services.start`` runs one ``Vitals`` thread per process that runs processors or relays, when
telemetry is on. Each report reads two aggregates (``saleshub.store.events.queue_depth`` and
``saleshub.store.outbox.backlog``: a count and a minimum over the small waiting sets) and sets:

* ``saleshub.process.queue_depth`` and ``saleshub.process.queue_oldest_age`` (seconds);
* ``saleshub.outbox.backlog`` and ``saleshub.outbox.oldest_age`` (seconds).

A database that does not answer skips the report (the gauges then stop, which a monitor's "no data"
shows); it is not logged each time, since the processors already say it.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from sqlalchemy import Engine

from saleshub.errors import RetriableError
from saleshub.platform.metrics import (
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
    PROCESS_QUEUE_DEPTH,
    PROCESS_QUEUE_OLDEST_AGE,
)
from saleshub.platform.telemetry import Telemetry
from saleshub.store.events import queue_depth
from saleshub.store.failures import database_errors
from saleshub.store.outbox import backlog

__all__ = ["Vitals"]

log = logging.getLogger(__name__)


def _age(oldest: datetime | None, now: datetime) -> float:
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0


class Vitals:
    """Reports the queue and outbox gauges every ``interval`` seconds."""

    def __init__(self, engine: Engine, telemetry: Telemetry, interval: float = 10.0) -> None:
        self.engine, self.telemetry, self.interval = engine, telemetry, interval

    def report(self) -> None:
        """Read the two aggregates and set the four gauges; ``RetriableError`` if the database is down."""
        with database_errors(), self.engine.connect() as conn:
            queued, oldest_queued = queue_depth(conn)
            waiting = backlog(conn)
        now = datetime.now(UTC)
        self.telemetry.gauge(PROCESS_QUEUE_DEPTH, queued)
        self.telemetry.gauge(PROCESS_QUEUE_OLDEST_AGE, _age(oldest_queued, now))
        self.telemetry.gauge(OUTBOX_BACKLOG, waiting.pending)
        self.telemetry.gauge(OUTBOX_OLDEST_AGE, _age(waiting.oldest, now))

    def run(self, stop: threading.Event) -> None:
        """Report until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.report()
            except RetriableError:
                pass  # the processors and relays report the outage; the gauges pause meanwhile
            except Exception:
                log.exception("vital signs not reported; trying again in %.0f s", self.interval)
            stop.wait(self.interval)
