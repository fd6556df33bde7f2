"""The processor: maps recorded events into canonical orders, in batches, one transaction per batch.

One round, in one database transaction:

1. claim some **lanes** (``FOR UPDATE SKIP LOCKED`` on ``processor_lanes``): an order's events
   always fall in the same lane, and a lane is worked by one processor at a time, so several
   processors (threads of ``saleshub serve``, or ``saleshub process`` processes) share the queue
   without overlap and without reordering an order's events;
2. read those lanes' queued events in the order they were queued;
3. decode, classify and map each (``map_event``); a ``DataError`` becomes the event's field errors;
4. store the orders and versions, the outbox rows and each event's final status, and remove the
   queue rows (``saleshub.process.writing``).

A processor killed mid-batch commits nothing: the lanes are released and the same events are
processed by the next round. If a batch cannot be written for a reason other than the database being
down (a bug, a value the database refuses), its events are written one by one under savepoints and
the one that fails alone is marked ``failed`` with its error, so no event can block its lane or make
later events of its order fail.

With telemetry on, each event gets its own ``process`` and ``store`` spans continuing the trace it
was recorded with (``saleshub.process.tracing``); the batch's SQL hangs under a ``process_batch``
span.

Processors sleep on PostgreSQL ``LISTEN`` and are woken by the ``NOTIFY`` each recording
transaction sends on commit; a short timeout covers a missed notification.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine

from adapters.base import SourceAdapter
from saleshub.errors import RetriableError
from saleshub.platform.telemetry import NoTelemetry, Telemetry
from saleshub.process.mapping_step import Processed, map_event
from saleshub.process.tracing import BatchTrace
from saleshub.process.writing import OutcomeWriter
from saleshub.publish.outbox import Outbox
from saleshub.store import events as store
from saleshub.store.events import PROCESSOR_LANES
from saleshub.store.failures import as_retriable, database_errors
from saleshub.store.listener import Listener

__all__ = ["ProcessRound", "Processor"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ProcessRound:
    """What one round (or sweep) did: events processed, by final status, and events failed alone."""

    events: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    failed_alone: int = 0

    def add(self, other: ProcessRound) -> None:
        """Add another round's counts to this one."""
        self.events += other.events
        self.failed_alone += other.failed_alone
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count


class Processor:
    """Processes queued events of any registered system (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        adapters: Mapping[str, SourceAdapter],
        outbox: Outbox,
        *,
        batch_size: int = 500,
        lanes_per_claim: int = 16,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.engine = engine
        self.adapters = dict(adapters)
        self.batch_size = batch_size
        self.lanes_per_claim = min(lanes_per_claim, PROCESSOR_LANES)
        self.telemetry = telemetry or NoTelemetry()
        self.writer = OutcomeWriter(outbox)
        self._shift = 0

    def process_round(self) -> ProcessRound:
        """Claim lanes, process their queued events, commit; ``RetriableError`` if the database is down."""
        trace = BatchTrace(self.telemetry) if self.telemetry.enabled else None
        try:
            with database_errors(), self.engine.begin() as conn:
                lanes = store.claim_lanes(conn, self._shift, self.lanes_per_claim)
                self._shift = (self._shift + self.lanes_per_claim) % PROCESSOR_LANES
                if not lanes:
                    return ProcessRound()
                queued = store.queued_events(conn, lanes, self.batch_size)
                if not queued:
                    return ProcessRound()
                with self.telemetry.span("process_batch", events=len(queued)):
                    processed = [self._map(trace, item) for item in queued]
                    statuses, failed_alone = self._write(conn, processed)
        except BaseException as exc:
            if trace is not None:
                trace.fail(exc)
            raise
        if trace is not None:  # after the commit: the spans and counts tell what was kept
            trace.finish(processed, statuses)
        return _round(statuses, failed_alone)

    def _map(self, trace: BatchTrace | None, item: store.QueuedEvent) -> Processed:
        adapter = self.adapters.get(item.system)
        if trace is None:
            return map_event(adapter, item)
        return trace.map(item, functools.partial(map_event, adapter, item))

    def _write(self, conn: Connection, processed: list[Processed]) -> tuple[list[store.Status], int]:
        """Write the batch (else each event alone); each event's final status, and how many failed alone."""
        try:
            with conn.begin_nested():
                return self.writer.write(conn, processed), 0
        except Exception as exc:
            if as_retriable(exc) is not None:
                raise
            log.warning(
                "a batch of %d events could not be written (%s); writing them one by one", len(processed), exc
            )
        statuses: list[store.Status] = []
        failed_alone = 0
        for item in processed:
            try:
                with conn.begin_nested():
                    statuses.extend(self.writer.write(conn, [item]))
            except Exception as exc:
                if as_retriable(exc) is not None:
                    raise
                log.exception("event %s could not be written; it is marked failed", item.queued.event_id)
                with conn.begin_nested():
                    self.writer.write_failed(conn, item, exc)
                statuses.append(store.Status.FAILED)
                failed_alone += 1
        return statuses, failed_alone

    def sweep(self, stop: threading.Event | None = None) -> ProcessRound:
        """Rounds over every lane once (fewer if ``stop`` is set)."""
        swept = ProcessRound()
        for _ in range(-(-PROCESSOR_LANES // self.lanes_per_claim)):
            swept.add(self.process_round())
            if stop is not None and stop.is_set():
                break
        return swept

    def drain(self, timeout: float = 60.0) -> ProcessRound:
        """Process until a whole sweep finds nothing or ``timeout`` passes; what was processed."""
        deadline = time.monotonic() + timeout
        total = ProcessRound()
        while time.monotonic() < deadline:
            swept = self.sweep()
            total.add(swept)
            if swept.events == 0:
                break
        return total

    def run(self, stop: threading.Event, idle_seconds: float = 1.0) -> None:
        """Process until ``stop`` is set: sweep while there is work, else wait for a notification."""
        failures = 0
        listener = Listener(self.engine, store.CHANNEL)
        try:
            while not stop.is_set():
                try:
                    listener.listen()
                    swept = self.sweep(stop)
                except RetriableError as exc:
                    failures += 1
                    if failures == 1:
                        log.warning("processor paused: %s; the queued events wait", exc)
                    listener.close()
                    stop.wait(min(10.0, 0.5 * 2 ** min(failures, 5)))
                    continue
                except Exception:
                    failures += 1
                    log.exception("processor round failed; retrying")
                    stop.wait(min(10.0, 0.5 * 2 ** min(failures, 5)))
                    continue
                if failures:
                    log.info("processor: processing again after %d failed attempts", failures)
                    failures = 0
                if swept.events == 0:
                    listener.wait(idle_seconds, stop)
        finally:
            listener.close()


def _round(statuses: list[store.Status], failed_alone: int = 0) -> ProcessRound:
    counted: dict[str, int] = {}
    for status in statuses:
        counted[status.value] = counted.get(status.value, 0) + 1
    return ProcessRound(len(statuses), counted, failed_alone)
