"""The inbound consumer: a source system's order-event topic (Pyxis: JSON records), recorded.

Each round takes up to ``batch_size`` records, admits them like any inbound event (decode and
classify, ``saleshub.receive.intake``) and records them in **one** database transaction through the
same recorder as the webhooks; a processor maps them afterwards. Only after that commit are the
offsets stored (``enable.auto.offset.store=false``; the client's auto-commit then commits what was
stored), so a consumer killed before its commit gets the same records again, and the idempotency
key (the source's event id, else the body's hash) makes the second pass write nothing.

A record that cannot be decoded or classified is recorded and quarantined like a bad webhook, then
forwarded to the dead-letter topic with the error in ``saleshub.error.*`` headers; its offset is
stored with the others, so a poison record never blocks its partition. (A record that decodes but
fails its mapping is quarantined later by the processor and announced as an ``order_rejected``
event, like every rejected event.) If the database is down the round's partitions are rewound to
its first records and retried after a pause: nothing is skipped.

Telemetry: each record gets a ``receive`` span that continues the producer's trace (the Datadog or
W3C trace headers of the record, as the hub's relay writes them) and a ``record`` span under it,
whose carrier is stored with the event for the processor; both end when the batch is committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from adapters.base import SourceAdapter
from saleshub.errors import RetriableError, UnknownAdapterError
from saleshub.platform.telemetry import NoTelemetry, Span, Telemetry
from saleshub.receive.intake import Admission, InboundEvent, admit
from saleshub.receive.recorder import Receipt, Recorder, mark_refused
from saleshub.store.events import Status

__all__ = ["ConsumeRound", "Headers", "OrderEventConsumer", "dead_letter_headers"]

log = logging.getLogger(__name__)

_REJECTED = (Status.QUARANTINED, Status.FAILED)


@dataclass(slots=True)
class ConsumeRound:
    """What one round did."""

    records: int = 0
    recorded: int = 0
    repeated: int = 0
    dead_lettered: int = 0


Headers = list[tuple[str, str | bytes | None]]


def _headers(message: Message) -> Headers:
    raw = message.headers() or []
    return list(raw.items()) if isinstance(raw, dict) else list(raw)


def dead_letter_headers(message: Message, result: Receipt) -> Headers:
    """The original record's headers plus where it came from and why the hub rejected it."""
    errors = result.errors or {}
    extra = {
        "saleshub.error.event_id": str(result.event_id),
        "saleshub.error.status": result.status.value,
        "saleshub.error.stage": str(errors.get("at_stage") or errors.get("stage") or ""),
        "saleshub.error.type": str(errors.get("error", "")),
        "saleshub.error.message": str(errors.get("message", ""))[:1000],
        "saleshub.original.topic": message.topic() or "",
        "saleshub.original.partition": str(message.partition()),
        "saleshub.original.offset": str(message.offset()),
    }
    return _headers(message) + [(key, value.encode()) for key, value in extra.items()]


def _carrier(message: Message) -> dict[str, str]:
    """The record's headers as text (a propagation carrier: ``x-datadog-*``, ``traceparent`` …)."""
    return {
        key.lower(): value if isinstance(value, str) else value.decode("utf-8", "replace")
        for key, value in _headers(message)
        if value is not None
    }


def _header(message: Message, name: str) -> str | None:
    for key, value in _headers(message):
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
        self.consumer, self.dead_letters = consumer, dead_letters
        self.system, self.topic, self.dead_letter_topic = system, topic, dead_letter_topic
        self.batch_size = batch_size
        self.telemetry = telemetry or NoTelemetry()
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
        """Dead-letter the rejected records, then store the offsets after every record of the batch."""
        rejected = [(m, r) for m, r in zip(messages, results, strict=True) if r.status in _REJECTED]
        if rejected:
            self._dead_letter(rejected)
        try:
            self.consumer.store_offsets(offsets=self._next_offsets(messages))
        except KafkaException as exc:  # revoked meanwhile: the new owner re-reads, idempotently
            log.warning("offsets not stored (partitions reassigned?): %s", exc)
        recorded = sum(not r.repeated for r in results)
        return ConsumeRound(len(messages), recorded, len(results) - recorded, len(rejected))

    def consume_round(self, timeout: float = 1.0) -> ConsumeRound:
        """Consume, record and acknowledge one batch; raises (rewound) if it could not be recorded."""
        messages = self._poll(timeout)
        if not messages:
            return ConsumeRound()
        try:
            return self._acknowledge(messages, self._record(messages))
        except Exception:
            self._rewind(messages)
            raise

    def _dead_letter(self, rejected: list[tuple[Message, Receipt]]) -> None:
        failures: list[str] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(str(error))

        for message, result in rejected:
            self.dead_letters.produce(
                self.dead_letter_topic,
                message.value(),
                message.key(),
                headers=dead_letter_headers(message, result),
                on_delivery=on_delivery,
            )
        while self.dead_letters.flush(1.0) > 0:
            pass
        if failures:
            raise KafkaException(f"dead-letter topic {self.dead_letter_topic}: {failures[0]}")

    @staticmethod
    def _next_offsets(messages: list[Message]) -> list[TopicPartition]:
        last: dict[tuple[str, int], int] = {}
        for message in messages:
            key = (message.topic() or "", message.partition() or 0)
            last[key] = max(last.get(key, -1), message.offset() or 0)
        return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()]

    def _rewind(self, messages: list[Message]) -> None:
        first: dict[tuple[str, int], int] = {}
        for message in messages:
            key = (message.topic() or "", message.partition() or 0)
            first[key] = min(first.get(key, message.offset() or 0), message.offset() or 0)
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
                stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))
            except Exception:
                failures += 1
                log.exception("Kafka consumer round failed; the records will be consumed again")
                stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))

    def close(self) -> None:
        """Leave the group, committing the offsets stored so far."""
        self.consumer.close()
        self.dead_letters.flush(5.0)
