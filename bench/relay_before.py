"""Baseline for bench/kafka.py: the outbox relay as it was before causal order per key (frozen copy).

The relay before: publishes ``event_outbox`` rows to Kafka and marks them published on acknowledgement.

One round, in one database transaction:

1. claim a set of **lanes** with ``SELECT … FROM outbox_lanes FOR UPDATE SKIP LOCKED``: a message key
   always falls in the same lane, and a lane is worked by one relay at a time, so several relay
   processes share the outbox without publishing the same row twice and without reordering a key;
2. read those lanes' unpublished rows in ``outbox_id`` order (an order's events are in that order);
3. produce each row (value framed for the configured registry or single-object encoding, CloudEvents
   1.0 attributes as ``ce_*`` headers) on an idempotent ``acks=all`` producer and wait for every
   delivery report;
4. mark acknowledged rows published (with partition and offset, for the audit trail) and count a
   failed attempt on the others. Once one of a key's rows failed, that key's later rows are left
   unpublished too, even if the broker took them: they are sent again after it, so the last record
   of every key is always its latest event.

A crash between the broker's acknowledgement and the commit publishes the round again on restart:
delivery is at least once, every record carries its ``ce_id`` for consumers to deduplicate. A broker
outage fails the rounds (after ``relay_message_timeout_ms``) and the backlog simply waits in the
outbox; the relay backs off, probes the broker before sending again, and drains the backlog when the
broker returns. A producer left fenced or in a fatal state (after timed-out messages an idempotent
producer bumps its epoch, which a broker may refuse) is replaced by a new one.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from sqlalchemy import Engine, Row, text

from canonical.events import EventKind
from saleshub.errors import RetriableError
from saleshub.publish.framing import Framing
from saleshub.publish.schemas import EventSchemas
from saleshub.store.failures import as_retriable
from saleshub.store.outbox import OUTBOX_LANES

__all__ = ["BrokerUnavailableError", "OutboxRelay", "RelayRound", "RelayStalledError", "cloudevents_headers"]

log = logging.getLogger(__name__)

_CLAIM_LANES = text(
    "SELECT lane FROM outbox_lanes ORDER BY (lane + :shift) % :lanes FOR UPDATE SKIP LOCKED LIMIT :count"
)
_PENDING = text(
    "SELECT outbox_id, event_id, kind, topic, message_key, source_system, subject, occurred_at, payload, "
    "schema_fingerprint FROM event_outbox "
    "WHERE published_at IS NULL AND lane = ANY(CAST(:lanes AS smallint[])) "
    "ORDER BY outbox_id LIMIT :limit"
)
_MARK_PUBLISHED = text(
    "UPDATE event_outbox AS o SET published_at = now(), kafka_partition = v.p, kafka_offset = v.o, "
    "attempts = o.attempts + 1, last_error = NULL "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:partitions AS integer[]), CAST(:offsets AS bigint[])) "
    "AS v(id, p, o) WHERE o.outbox_id = v.id"
)
_MARK_FAILED = text(
    "UPDATE event_outbox SET attempts = attempts + 1, last_error = :error "
    "WHERE outbox_id = ANY(CAST(:ids AS bigint[]))"
)


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
        probe_timeout: float = 5.0,
    ) -> None:
        self.engine = engine
        self._new_producer = producer_factory
        self.producer = producer_factory()
        self._suspect = False  # the last round failed: probe the broker before sending again
        self.probe_timeout = probe_timeout
        self.framing = framing
        self.schemas = schemas
        self.batch_size = batch_size
        self.lanes_per_claim = min(lanes_per_claim, OUTBOX_LANES)
        self._shift = 0

    def publish_round(self) -> RelayRound:
        """Claim some lanes, publish their pending rows, record the outcome; one transaction."""
        result = RelayRound()
        with self.engine.begin() as conn:
            lanes = list(
                conn.execute(
                    _CLAIM_LANES, {"shift": self._shift, "lanes": OUTBOX_LANES, "count": self.lanes_per_claim}
                ).scalars()
            )
            self._shift = (self._shift + self.lanes_per_claim) % OUTBOX_LANES
            if not lanes:
                return result
            rows = conn.execute(_PENDING, {"lanes": lanes, "limit": self.batch_size}).all()
            result.read = len(rows)
            if not rows:
                return result
            if self._suspect:
                self._probe()
            outcome = self._produce(rows)
            published: dict[str, list[int]] = {"ids": [], "partitions": [], "offsets": []}
            failed: list[int] = []
            blocked: set[str] = set()
            for row, report in zip(rows, outcome, strict=True):
                if isinstance(report, tuple) and row.message_key not in blocked:
                    published["ids"].append(row.outbox_id)
                    published["partitions"].append(report[0])
                    published["offsets"].append(report[1])
                # A row delivered after a failed row of its key stays unpublished: sent again later.
                elif not isinstance(report, tuple):
                    blocked.add(row.message_key)
                    failed.append(row.outbox_id)
                    if report and report not in result.errors:
                        result.errors.append(report)
            if published["ids"]:
                conn.execute(_MARK_PUBLISHED, published)
            if failed:
                conn.execute(_MARK_FAILED, {"ids": failed, "error": "; ".join(result.errors)[:2000]})
            result.published, result.failed = len(published["ids"]), len(failed)
        self._suspect = bool(failed)
        return result

    def _probe(self) -> None:
        """Ask the broker for metadata; raise (failing the round, sending nothing) if it does not answer."""
        try:
            self.producer.list_topics(timeout=self.probe_timeout)
        except KafkaException as exc:
            raise BrokerUnavailableError(f"the Kafka broker does not answer: {exc}") from exc
        self._suspect = False

    def _produce(self, rows: Sequence[Row[Any]]) -> list[tuple[int, int] | str | None]:
        reports = _Reports(len(rows))
        producer = self.producer
        framing = self.framing
        for index, row in enumerate(rows):
            try:
                schema = self.schemas.by_id(row.schema_fingerprint)
            except KeyError as exc:
                reports.outcome[index] = str(exc.args[0])
                continue
            value = framing.frame(row.topic, schema, row.payload)
            headers = cloudevents_headers(row, framing.dataschema(row.topic, schema))
            callback = functools.partial(reports.on_delivery, index)
            while True:
                try:
                    producer.produce(
                        row.topic, value, row.message_key.encode(), headers=headers, on_delivery=callback
                    )
                    break
                except BufferError:  # local queue full: let delivery reports drain it
                    producer.poll(0.1)
        # Every produced message gets a report within message.timeout.ms, success or failure.
        while producer.flush(1.0) > 0:
            pass
        if reports.producer_dead:
            log.warning("outbox relay: the Kafka producer is fenced or failed; starting a new one")
            self.producer = self._new_producer()
        return reports.outcome

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
        """Publish until ``stop`` is set: sweep every lane, sleep when idle, back off on failures."""
        failures = 0
        while not stop.is_set():
            swept = self.sweep(stop)
            if swept.failed:
                failures += 1
                if failures == 1:
                    log.warning("outbox relay: %d events not published: %s", swept.failed, swept.errors[:3])
                stop.wait(min(10.0, 0.5 * 2 ** min(failures, 5)))
                continue
            if failures:
                log.info("outbox relay: publishing again after %d failed sweeps", failures)
                failures = 0
            if swept.read == 0:
                stop.wait(idle_seconds)

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
