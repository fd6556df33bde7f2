"""The outbox relay: publishes ``event_outbox`` rows to Kafka, each order's events in causal order.

**What it guarantees.** An order's events go to several topics (``order_received``,
``order_updated``, ``order_cancelled``) under one key, ``{country}_{order id}``. The relay produces
an event only after the broker acknowledged every earlier event of the same key, whatever topic it
went to: each round takes, per key, only the oldest unpublished event (``saleshub.store.outbox``
reads nothing else), and a key's next event becomes eligible when that one is marked published. A
record that fails (broker down, timed out, fenced producer, unknown schema) is retried in a later
round and holds back its own key's later events, and only those. So, after dropping repeated
``ce_id`` values, no event is ever written to Kafka before an earlier version of its order. Kafka itself
orders records only within a partition: a consumer reading several topics can still *read* a later
version first, which is why every order event carries ``version_no`` and ``previous_version_no``
(``docs/consuming-order-events.md``).

**Why waiting costs nothing in the usual case.** With one pending event per order (the common case:
an order changes far less often than a round takes), every pending event is its key's oldest, so a
round produces all of them at once, exactly as before. Only a key with several pending events
publishes one of them per round. The idempotent ``acks=all`` producer keeps order *within* a
partition, but a failed record may be followed by an acknowledged later one (no gapless guarantee)
and nothing orders two topics, so waiting for the acknowledgement is the only sound rule across
topics; ``max.in.flight`` is left at its default, since no key ever has two records in flight.

**No transaction open while waiting on the broker.** A round is:

1. ``claim_round`` (one short transaction): lease some of the 64 lanes (a key always falls in the same
   lane; a lease names this relay and expires after ``2 × delivery timeout + 30 s``, so a crashed
   relay's lanes free themselves) and read their eligible events;
2. frame each (registry or single-object encoding, CloudEvents 1.0 ``ce_*`` headers) and produce it,
   then wait for every delivery report, outside any transaction;
3. ``finish_round`` (one short transaction): mark the acknowledged events published (partition and
   offset, for the audit trail), count a failed attempt on the others, end the lease.

A crash between the broker's acknowledgement and step 3 publishes those events again: delivery is
at least once, and every record carries its ``ce_id`` for consumers to deduplicate. A duplicate can
only come *after* the first copy, never let a later version overtake.

**Outages.** While it waits for reports, backs off or idles, the relay's ``BrokerWatch`` probes the
broker with a metadata request every second; a probe that gets no answer within a couple of seconds
records "unreachable since" in the database for ``saleshub status`` and purges the records still
queued in the producer, so the round ends without waiting out the delivery timeout. The relay then
backs off, probes before sending again, replaces a producer left fenced or in a fatal state (after
timed-out messages an idempotent producer bumps its epoch, which a broker may refuse), and drains
the backlog when the broker returns.

**Telemetry.** With telemetry on, each produced event gets a ``publish`` span that continues the
trace its event was processed in (the carrier in the event's ``headers`` → ``trace``), ends with
the broker's answer (partition and offset, or the error), and is propagated in the record's headers
(Datadog ``x-datadog-*`` and W3C ``traceparent``), so a consumer continues it. Published and failed
events are counted per topic.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from sqlalchemy import Engine

from canonical.events import EventKind
from saleshub.errors import RetriableError
from saleshub.platform.metrics import PUBLISH_FAILED, PUBLISH_PUBLISHED
from saleshub.platform.telemetry import NoTelemetry, Span, Telemetry
from saleshub.publish.broker_watch import BrokerWatch
from saleshub.publish.framing import Framing
from saleshub.publish.schemas import EventSchemas
from saleshub.store.events import trace_carriers
from saleshub.store.failures import as_retriable, database_errors
from saleshub.store.outbox import OUTBOX_LANES, Delivered, OutboxRow, claim_round, finish_round

__all__ = ["BrokerUnavailableError", "OutboxRelay", "RelayRound", "RelayStalledError", "cloudevents_headers"]

log = logging.getLogger(__name__)


_CE_TYPES = {kind.value: kind.ce_type.encode() for kind in EventKind}


def cloudevents_headers(row: Any, dataschema: str) -> list[tuple[str, str | bytes | None]]:
    """CloudEvents 1.0 attributes in Kafka binary mode for one outbox row (no personal data)."""
    occurred = row.occurred_at.astimezone(UTC)
    headers: list[tuple[str, str | bytes | None]] = [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(row.event_id)),
        ("ce_source", "/saleshub/" + row.source_system),
        ("ce_type", _CE_TYPES[row.kind]),
        ("ce_time", occurred.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
        ("ce_dataschema", dataschema),
        ("content-type", b"application/avro"),
    ]
    if row.subject:
        headers.append(("ce_subject", row.subject))
    return headers


class BrokerUnavailableError(RetriableError):
    """The broker did not answer a metadata request; nothing was sent."""


class RelayStalledError(RetriableError):
    """A drain stopped: a whole sweep published nothing although events wait."""


@dataclass(slots=True)
class RelayRound:
    """What one round (or sweep) did: rows read, published and failed, and the distinct errors."""

    read: int = 0
    published: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


# Delivery errors after which this producer instance can never deliver again.
_PRODUCER_DEAD = {
    KafkaError.PRODUCER_FENCED,
    KafkaError._FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.UNKNOWN_PRODUCER_ID,
    KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
    KafkaError._FATAL,
}


class _Reports:
    """Delivery reports of one round, by row index."""

    def __init__(self, size: int) -> None:
        self.outcome: list[tuple[int, int] | str | None] = [None] * size
        self.producer_dead = False

    def on_delivery(self, index: int, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.outcome[index] = f"{error.name()}: {error.str()}"
            if error.fatal() or error.code() in _PRODUCER_DEAD:
                self.producer_dead = True
        else:
            self.outcome[index] = (message.partition() or 0, message.offset() or 0)


class OutboxRelay:
    """Moves outbox rows to Kafka; see the module docstring for the guarantees."""

    def __init__(
        self,
        engine: Engine,
        producer_factory: Callable[[], Producer],
        framing: Framing,
        schemas: EventSchemas,
        *,
        batch_size: int = 2000,
        lanes_per_claim: int = 16,
        probe_timeout: float = 2.0,
        delivery_timeout: float = 30.0,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.engine = engine
        self.telemetry = telemetry or NoTelemetry()
        self.relay_id = uuid.uuid4()
        self._new_producer = producer_factory
        self.producer = producer_factory()
        self._suspect = False  # the last round failed: probe the broker before sending again
        self.watch = BrokerWatch(engine, probe_timeout=probe_timeout)
        self.framing = framing
        self.schemas = schemas
        self.batch_size = batch_size
        self.lanes_per_claim = min(lanes_per_claim, OUTBOX_LANES)
        # Every record is reported within the delivery timeout: a lease twice as long never ends
        # while its relay still waits for reports.
        self.lease_seconds = 2 * delivery_timeout + 30
        self._shift = 0

    def publish_round(self) -> RelayRound:
        """Lease some lanes, publish each key's oldest pending event, record the outcome."""
        result = RelayRound()
        if self._suspect:
            self._probe()
        claim = claim_round(
            self.engine,
            self.relay_id,
            lanes=self.lanes_per_claim,
            shift=self._shift,
            lease_seconds=self.lease_seconds,
            limit=self.batch_size,
        )
        self._shift = (self._shift + self.lanes_per_claim) % OUTBOX_LANES
        rows = claim.rows
        result.read = len(rows)
        if not rows:
            return result
        reports = _Reports(len(rows))
        spans = self._open_spans(rows) if self.telemetry.enabled else None
        try:
            self._produce(rows, reports, spans)
        finally:  # whatever happened, record what the broker acknowledged and end the lease
            published: list[Delivered] = []
            failed: list[int] = []
            for row, report in zip(rows, reports.outcome, strict=True):
                if isinstance(report, tuple):
                    published.append(Delivered(row.outbox_id, report[0], report[1]))
                else:
                    failed.append(row.outbox_id)
                    if report and report not in result.errors:
                        result.errors.append(report)
            error = "; ".join(result.errors) or "not sent: the round ended before this record was produced"
            if spans is not None:
                self._close_spans(rows, spans, reports)
            finish_round(
                self.engine, self.relay_id, claim.lanes, published=published, failed=failed, error=error
            )
        result.published, result.failed = len(published), len(failed)
        self._suspect = bool(failed)
        return result

    def _probe(self) -> None:
        """Ask the broker for metadata; raise (failing the round, sending nothing) if it does not answer."""
        if not self.watch.probe(self.producer):
            raise BrokerUnavailableError(self.watch.last_error or "the Kafka broker does not answer")
        self._suspect = False

    def _open_spans(self, rows: Sequence[OutboxRow]) -> list[Span]:
        """One ``publish`` span per row, continuing the trace stored with its event."""
        with database_errors(), self.engine.connect() as conn:
            carriers = trace_carriers(conn, [(row.event_id, row.occurred_at) for row in rows])
        return [
            self.telemetry.start_span(
                "publish",
                parent=carriers.get(row.event_id),
                system=row.source_system,
                topic=row.topic,
                kind=row.kind,
                event_id=str(row.event_id),
            )
            for row in rows
        ]

    def _close_spans(self, rows: Sequence[OutboxRow], spans: list[Span], reports: _Reports) -> None:
        for row, span, report in zip(rows, spans, reports.outcome, strict=True):
            tags = {"topic": row.topic, "system": row.source_system}
            if isinstance(report, tuple):
                span.set_tags(status="published", partition=report[0], offset=report[1])
                self.telemetry.count(PUBLISH_PUBLISHED, 1, **tags)
            else:
                span.set_tags(status="failed", error_message=report or "not sent")
                self.telemetry.count(PUBLISH_FAILED, 1, **tags)
            span.finish()

    def _produce(self, rows: Sequence[OutboxRow], reports: _Reports, spans: list[Span] | None) -> None:
        producer = self.producer
        framing = self.framing
        try:
            for index, row in enumerate(rows):
                try:
                    schema = self.schemas.by_id(row.schema_fingerprint)
                except KeyError as exc:
                    reports.outcome[index] = str(exc.args[0])
                    continue
                value = framing.frame(row.topic, schema, row.payload)
                headers = cloudevents_headers(row, framing.dataschema(row.topic, schema))
                if spans is not None:
                    headers.extend(spans[index].context().items())
                callback = functools.partial(reports.on_delivery, index)
                while True:
                    try:
                        producer.produce(
                            row.topic, value, row.message_key.encode(), headers=headers, on_delivery=callback
                        )
                        break
                    except BufferError:  # local queue full: let delivery reports drain it
                        producer.poll(0.1)
        finally:
            self._await_reports(producer)
        if reports.producer_dead:
            log.warning("outbox relay: the Kafka producer is fenced or failed; starting a new one")
            self.producer = self._new_producer()

    def _await_reports(self, producer: Producer) -> None:
        """Wait for every delivery report, probing the broker meanwhile.

        Every produced record is reported within the delivery timeout. When the broker stops
        answering, the records not yet sent are purged (reported as failed at once) so the round ends
        in seconds; records already sent wait for their own report.
        """
        while producer.flush(0.5) > 0:
            if self.watch.due() and not self.watch.probe(producer):
                producer.purge(in_queue=True, in_flight=False, blocking=False)

    def sweep(self, stop: threading.Event | None = None) -> RelayRound:
        """Rounds over every lane once (fewer if ``stop`` is set); ends at the first outage error.

        An unavailable broker or database is an expected state: counted as a failure, no trace. Any
        other error is logged with its trace, since somebody has to fix it.
        """
        swept = RelayRound()
        for _ in range(-(-OUTBOX_LANES // self.lanes_per_claim)):
            try:
                round_ = self.publish_round()
            except Exception as exc:
                retriable = exc if isinstance(exc, RetriableError) else as_retriable(exc)
                if retriable is None:
                    log.exception("outbox relay round failed; retrying")
                swept.failed += 1
                swept.errors.append(str(retriable or exc))
                break
            swept.read += round_.read
            swept.published += round_.published
            swept.failed += round_.failed
            swept.errors.extend(round_.errors)
            if stop is not None and stop.is_set():
                break
        return swept

    def run(self, stop: threading.Event, idle_seconds: float = 0.2) -> None:
        """Publish until ``stop`` is set: sweep every lane, sleep when idle, back off on failures.

        A sweep that published something is followed by the next at once, even if some of its
        records failed (they are retried there); one that published nothing and failed backs off.
        """
        failures = 0
        while not stop.is_set():
            swept = self.sweep(stop)
            if swept.failed and not swept.published:
                failures += 1
                if failures == 1:
                    log.warning("outbox relay: %d events not published: %s", swept.failed, swept.errors[:3])
                self._pause(stop, min(10.0, 0.5 * 2 ** min(failures, 5)))
                continue
            if failures:
                log.info("outbox relay: publishing again after %d failed sweeps", failures)
                failures = 0
            if swept.read == 0:
                self._pause(stop, idle_seconds)

    def _pause(self, stop: threading.Event, seconds: float) -> None:
        """Wait ``seconds`` (less if ``stop`` is set or the broker answers again), probing it meanwhile."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if self.watch.due():
                was_down = self.watch.reachable is False
                if self.watch.probe(self.producer) and was_down:
                    return  # the broker is back: no need to sit out the back-off
            stop.wait(min(left, self.watch.interval))

    def drain(self, timeout: float = 60.0) -> int:
        """Publish until the outbox is empty or ``timeout`` passes; return the rows published.

        Raises ``RelayStalledError`` when a whole sweep publishes nothing although rows wait (the
        broker is down, or rows keep failing), naming the error, instead of spinning until timeout.
        """
        deadline = time.monotonic() + timeout
        total = 0
        while time.monotonic() < deadline:
            swept = self.sweep()
            total += swept.published
            if swept.read == 0 and not swept.failed:
                return total
            if swept.published == 0 and swept.failed:
                errors = "; ".join(dict.fromkeys(swept.errors))
                raise RelayStalledError(f"published {total} events, then nothing: {errors}")
        return total

    def close(self) -> None:
        """Flush what the producer still holds."""
        self.producer.flush(5.0)
