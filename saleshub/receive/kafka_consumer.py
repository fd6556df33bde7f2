"""The inbound consumer: a source system's order-event topic (Pyxis: JSON records), recorded.

Each round takes up to ``batch_size`` records, admits them like any inbound event (decode and
classify, ``saleshub.receive.intake``) and records them in **one** database transaction through the
same recorder as the webhooks; a processor maps them afterwards. Only after that commit are the
offsets stored (``enable.auto.offset.store=false``; the client's auto-commit then commits what was
stored), so a consumer killed before its commit gets the same records again, and the idempotency
key makes the second pass write nothing: the source's event id, else the record's topic, partition
and offset with the body's hash (two records with the same bytes and no event id are two events).

A record that intake refused is recorded and quarantined like a bad webhook, then forwarded to the
dead-letter topic once (``saleshub.receive.dead_letters``; one too large for it goes as a
reference to the stored event); its offset is stored with the others, so a poison record never
blocks its partition. (A record that decodes but fails its mapping is quarantined later by the
processor and announced as an ``order_rejected`` event, like every rejected event, and is not
dead-lettered.) Only a dead letter the broker did not take for a reason that can pass (broker
down, topic missing) holds back its own partition: stored up to that record, the partition is
rewound to it and paused, and retried after a backoff while the other partitions go on. If the
database is down the round's partitions are rewound to its first records and retried after a
pause: nothing is skipped.

Telemetry: each record gets a ``receive`` span that continues the producer's trace (the Datadog or
W3C trace headers of the record, as the hub's relay writes them) and a ``record`` span under it,
whose carrier is stored with the event for the processor; both end when the batch is committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from adapters.base import SourceAdapter
from saleshub.errors import RetriableError, UnknownAdapterError
from saleshub.platform.telemetry import NoTelemetry, Span, Telemetry
from saleshub.receive.dead_letters import DeadLetters, original_headers
from saleshub.receive.intake import Admission, InboundEvent, admit
from saleshub.receive.recorder import Receipt, Recorder, mark_refused
from saleshub.store.events import Status

__all__ = ["ConsumeRound", "OrderEventConsumer"]

log = logging.getLogger(__name__)

_Partition = tuple[str, int]

_REJECTED = (Status.QUARANTINED, Status.FAILED)


@dataclass(slots=True)
class ConsumeRound:
    """What one round did. ``held``: partitions held back at a record the dead-letter topic did not take."""

    records: int = 0
    recorded: int = 0
    repeated: int = 0
    dead_lettered: int = 0
    held: int = 0


def _backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row: 1, 2, 4 … 30."""
    return min(30.0, 0.5 * 2.0 ** min(failures, 6))


def _where(message: Message) -> _Partition:
    return message.topic() or "", message.partition() or 0


def _carrier(message: Message) -> dict[str, str]:
    """The record's headers as text (a propagation carrier: ``x-datadog-*``, ``traceparent`` …)."""
    return {
        key.lower(): value if isinstance(value, str) else value.decode("utf-8", "replace")
        for key, value in original_headers(message)
        if value is not None
    }


def _header(message: Message, name: str) -> str | None:
    for key, value in original_headers(message):
        if key.lower() == name and value is not None:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None


class OrderEventConsumer:
    """Consumes one system's order-event topic as a member of the hub's consumer group."""

    def __init__(
        self,
        recorder: Recorder,
        adapters: Mapping[str, SourceAdapter],
        consumer: Consumer,
        dead_letters: Producer,
        *,
        system: str,
        topic: str,
        dead_letter_topic: str,
        batch_size: int = 500,
        telemetry: Telemetry | None = None,
    ) -> None:
        adapter = adapters.get(system)
        if adapter is None:
            raise UnknownAdapterError(system, sorted(adapters))
        self.recorder, self.adapter = recorder, adapter
        self.consumer = consumer
        self.dead_letters = DeadLetters(recorder.engine, dead_letters, dead_letter_topic)
        self.system, self.topic, self.dead_letter_topic = system, topic, dead_letter_topic
        self.batch_size = batch_size
        self.telemetry = telemetry or NoTelemetry()
        # Partitions held back at a record the dead-letter topic did not take: when to try again,
        # and how many tries in a row failed.
        self._held: dict[_Partition, tuple[float, int]] = {}
        consumer.subscribe([topic])

    def _event(self, message: Message) -> InboundEvent:
        return InboundEvent(
            system=self.system,
            transport="kafka",
            body=message.value() or b"",
            content_type=_header(message, "content-type") or "application/json",
            headers={
                "kafka-topic": message.topic() or "",
                "kafka-partition": str(message.partition()),
                "kafka-offset": str(message.offset()),
            },
            received_at=datetime.now(UTC),
            position=f"{message.topic()}:{message.partition()}:{message.offset()}",
        )

    def _poll(self, timeout: float) -> list[Message]:
        messages = []
        for message in self.consumer.consume(self.batch_size, timeout):
            error = message.error()
            if error is None:
                messages.append(message)
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("Kafka consumer: %s", error)
        return messages

    def _admit(self, messages: list[Message]) -> list[tuple[InboundEvent, Admission]]:
        items = []
        for message in messages:
            event = self._event(message)
            items.append((event, admit(event, self.adapter)))
        return items

    def _traced(
        self, items: list[tuple[InboundEvent, Admission]], messages: list[Message]
    ) -> tuple[list[tuple[InboundEvent, Admission]], list[tuple[Span, Span]]]:
        """Open each record's receive and record spans; the events carry their record span's carrier."""
        traced, spans = [], []
        for (event, admission), message in zip(items, messages, strict=True):
            tags = {"system": self.system, "transport": "kafka", "topic": message.topic() or ""}
            receive = self.telemetry.start_span("receive", parent=_carrier(message), **tags)
            record = self.telemetry.start_span("record", parent=receive.context(), **tags)
            traced.append((replace(event, trace=record.context()), admission))
            spans.append((receive, record))
        return traced, spans

    def _record(self, messages: list[Message]) -> list[Receipt]:
        items = self._admit(messages)
        if not self.telemetry.enabled:
            return self.recorder.record_batch(items)
        items, spans = self._traced(items, messages)
        try:
            results = self.recorder.record_batch(items)
        except Exception as exc:
            for receive, record in spans:
                record.set_error(exc)
                record.finish()
                receive.finish()
            raise
        for (receive, record), result in zip(spans, results, strict=True):
            record.set_tags(
                status=result.status.value, repeated=result.repeated, event_id=str(result.event_id)
            )
            mark_refused(record, result)
            record.finish()
            receive.set_tags(status=result.status.value)
            receive.finish()
        return results

    def _acknowledge(self, messages: list[Message], results: list[Receipt]) -> ConsumeRound:
        """Dead-letter the records intake refused, then store the offsets after every settled record.

        A partition with a record the dead-letter topic did not take is stored up to that record,
        rewound to it and paused until its retry; the other partitions are not held back.
        """
        rejected = [
            (m, r)
            for m, r in zip(messages, results, strict=True)
            if r.status in _REJECTED and r.stopped_at_intake  # not one an operator dismissed since
        ]
        forwarded = self.dead_letters.forward(rejected) if rejected else None
        unsettled = forwarded.unsettled if forwarded else {}
        offsets = self._next_offsets(messages)
        offsets.update(unsettled)
        try:
            self.consumer.store_offsets(
                offsets=[
                    TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()
                ]
            )
        except KafkaException as exc:  # revoked meanwhile: the new owner re-reads, idempotently
            log.warning("offsets not stored (partitions reassigned?): %s", exc)
        for where in offsets.keys() - unsettled.keys():
            self._held.pop(where, None)  # settled: the next failure starts a new backoff
        if unsettled:
            self._hold(unsettled, forwarded.error if forwarded else None)
        recorded = sum(not r.repeated for r in results)
        sent = forwarded.sent if forwarded else 0
        return ConsumeRound(len(messages), recorded, len(results) - recorded, sent, len(unsettled))

    def _hold(self, unsettled: dict[_Partition, int], error: str | None) -> None:
        """Rewind each partition to its unsettled record and pause it until its retry is due."""
        for (topic, partition), offset in unsettled.items():
            failures = self._held.get((topic, partition), (0.0, 0))[1] + 1
            wait = _backoff(failures)
            self._held[(topic, partition)] = (time.monotonic() + wait, failures)
            log.warning(
                "Kafka consumer: %s[%d] held at offset %d for %.0f s (%s); the other partitions go on",
                topic,
                partition,
                offset,
                wait,
                error,
            )
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
                self.consumer.pause([TopicPartition(topic, partition)])
            except KafkaException as exc:  # no longer ours after a rebalance: its new owner resumes it
                log.warning("cannot hold %s[%d] at %d: %s", topic, partition, offset, exc)

    def _resume_due(self) -> None:
        """Resume the held partitions whose retry is due (the hold itself stays until they settle)."""
        now = time.monotonic()
        due = [where for where, (until, _) in self._held.items() if until <= now]
        for topic, partition in due:
            failures = self._held[(topic, partition)][1]
            self._held[(topic, partition)] = (float("inf"), failures)  # resumed once per hold
            try:
                self.consumer.resume([TopicPartition(topic, partition)])
            except KafkaException as exc:  # no longer ours: nothing to resume
                log.warning("cannot resume %s[%d]: %s", topic, partition, exc)

    def consume_round(self, timeout: float = 1.0) -> ConsumeRound:
        """Consume, record and acknowledge one batch; raises (rewound) if it could not be recorded."""
        self._resume_due()
        messages = self._poll(timeout)
        if not messages:
            return ConsumeRound()
        try:
            return self._acknowledge(messages, self._record(messages))
        except Exception:
            self._rewind(messages)
            raise

    @staticmethod
    def _next_offsets(messages: list[Message]) -> dict[_Partition, int]:
        """Per partition, the offset after its last record in ``messages``."""
        last: dict[_Partition, int] = {}
        for message in messages:
            where = _where(message)
            last[where] = max(last.get(where, -1), (message.offset() or 0) + 1)
        return last

    def _rewind(self, messages: list[Message]) -> None:
        first: dict[_Partition, int] = {}
        for message in messages:
            where = _where(message)
            first[where] = min(first.get(where, message.offset() or 0), message.offset() or 0)
        for (topic, partition), offset in first.items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # no longer ours after a rebalance: its new owner resumes it
                log.warning("cannot rewind %s[%d] to %d: %s", topic, partition, offset, exc)

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; pause and retry while the database is unavailable."""
        failures = 0
        while not stop.is_set():
            try:
                self.consume_round()
                failures = 0
            except RetriableError as exc:  # the database is down: say so once a round, no trace
                failures += 1
                log.warning("Kafka consumer paused (%s); the records will be consumed again", exc)
                stop.wait(_backoff(failures))
            except Exception:
                failures += 1
                log.exception("Kafka consumer round failed; the records will be consumed again")
                stop.wait(_backoff(failures))

    def close(self) -> None:
        """Leave the group, committing the offsets stored so far."""
        self.consumer.close()
        self.dead_letters.close()
