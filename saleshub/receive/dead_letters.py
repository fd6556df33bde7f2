"""The dead-letter topic: inbound Kafka records that intake refused, each forwarded once.

A record that intake refused (wrong content type, undecodable, unclassifiable, or a bug at intake)
is recorded and quarantined like a bad webhook; ``DeadLetters.forward`` then sends it to the
dead-letter topic with its original headers plus ``saleshub.error.*`` (why) and
``saleshub.original.*`` (whence). A record that decodes but fails its mapping is not sent here:
a processor quarantines it later and announces it as an ``order_rejected`` event, like every
rejected event of every transport, and it is replayed once its mapping is fixed.

Each forward is noted in the store (``kafka_dead_letters``) after the topic acknowledged it, and a
record noted there is not sent again: a round consumed a second time (a retry, a consumer killed
before its offset commit) adds nothing to the topic.

A record the dead-letter producer or broker refuses as too large (``MSG_SIZE_TOO_LARGE``: it was
accepted on the source topic under a larger limit) can never be sent whole, so it is sent as a
**reference**: no value, the hub's headers only, ``saleshub.dead_letter.form: reference`` and
``saleshub.error.event_id`` naming the stored event that keeps its bytes. Any other failure (broker
down, topic missing, not authorised) can pass, so the record is reported back as not settled: the
consumer holds back its partition, from that record on, and retries it later.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from sqlalchemy import Engine

from saleshub.receive.recorder import Receipt
from saleshub.store.dead_letters import DeadLetter, already_dead_lettered, write_dead_letters
from saleshub.store.failures import database_errors

__all__ = ["DeadLetters", "Forwarded", "Headers", "dead_letter_headers", "original_headers"]

log = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]

_FULL, _REFERENCE = "full", "reference"
#: A key longer than this is left out of a reference record (it may be why the record is too large).
_REFERENCE_KEY_BYTES = 1024


def original_headers(message: Message) -> Headers:
    """The record's headers as a list of (name, value)."""
    raw = message.headers() or []
    return list(raw.items()) if isinstance(raw, dict) else list(raw)


def dead_letter_headers(message: Message, result: Receipt, form: str = _FULL) -> Headers:
    """Why the hub rejected the record and where it came from; a full record keeps its own headers."""
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
        "saleshub.original.size": str(len(message.value() or b"")),
        "saleshub.dead_letter.form": form,
    }
    own = original_headers(message) if form == _FULL else []
    return own + [(key, value.encode()) for key, value in extra.items()]


@dataclass(slots=True)
class Forwarded:
    """What one ``forward`` did: records sent, and the first record per partition left unsettled."""

    sent: int = 0
    references: int = 0
    #: (topic, partition) -> offset of the first record of that partition not on the topic.
    unsettled: dict[tuple[str, int], int] = field(default_factory=dict)
    error: str | None = None


@dataclass(slots=True)
class _Attempt:
    message: Message
    result: Receipt
    form: str = _FULL
    delivered: Message | None = None
    error: KafkaError | None = None


def _too_large(error: KafkaError | None) -> bool:
    return error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE


class DeadLetters:
    """Forwards refused inbound records to the dead-letter topic, each once (see the module docs)."""

    def __init__(self, engine: Engine, producer: Producer, topic: str) -> None:
        self.engine, self.producer, self.topic = engine, producer, topic
        # Acknowledged by the topic but not yet noted in the store (the database failed meanwhile):
        # noted with the next forward instead of being sent again.
        self._unnoted: dict[uuid.UUID, DeadLetter] = {}

    def forward(self, rejected: Sequence[tuple[Message, Receipt]]) -> Forwarded:
        """Send the records not sent before; note them; report those that could not be sent."""
        with database_errors(), self.engine.connect() as conn:
            done = already_dead_lettered(conn, [result.event_id for _, result in rejected])
        done |= self._unnoted.keys()
        attempts: dict[uuid.UUID, _Attempt] = {}
        for message, result in rejected:
            if result.event_id not in done and result.event_id not in attempts:
                attempts[result.event_id] = _Attempt(message, result)
        self._send(list(attempts.values()))
        # Refused as too large on delivery (a broker's limit below the producer's): by reference.
        resend = [a for a in attempts.values() if a.form == _FULL and _too_large(a.error)]
        for attempt in resend:
            attempt.form, attempt.error = _REFERENCE, None
        self._send(resend)
        outcome = Forwarded()
        for attempt in attempts.values():
            if attempt.delivered is None:
                self._unsettled(outcome, attempt)
                continue
            outcome.sent += 1
            outcome.references += attempt.form == _REFERENCE
            self._unnoted[attempt.result.event_id] = self._letter(attempt, attempt.delivered)
        self._note()
        return outcome

    def _send(self, attempts: list[_Attempt]) -> None:
        for attempt in attempts:
            self._produce(attempt)
        while self.producer.flush(1.0) > 0:
            pass

    def _produce(self, attempt: _Attempt) -> None:
        def on_delivery(error: KafkaError | None, delivered: Message) -> None:
            attempt.error = error
            attempt.delivered = delivered if error is None else None

        message = attempt.message
        key = message.key()
        if attempt.form == _REFERENCE and key is not None and len(key) > _REFERENCE_KEY_BYTES:
            key = None
        value = message.value() if attempt.form == _FULL else None
        headers = dead_letter_headers(message, attempt.result, attempt.form)
        try:
            self.producer.produce(self.topic, value, key, headers=headers, on_delivery=on_delivery)
        except KafkaException as exc:  # refused before sending: the record is larger than the limit …
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if attempt.form == _FULL and _too_large(error):
                attempt.form = _REFERENCE
                self._produce(attempt)
                return
            attempt.error = error or KafkaError(KafkaError._FAIL, str(exc))
        except BufferError as exc:  # … or the producer's queue is full: a later round can pass
            attempt.error = KafkaError(KafkaError._QUEUE_FULL, str(exc))

    def _unsettled(self, outcome: Forwarded, attempt: _Attempt) -> None:
        message = attempt.message
        where = (message.topic() or "", message.partition() or 0)
        offset = message.offset() or 0
        outcome.unsettled[where] = min(outcome.unsettled.get(where, offset), offset)
        if outcome.error is None:
            outcome.error = f"dead-letter topic {self.topic}: {attempt.error or 'not acknowledged'}"

    def _letter(self, attempt: _Attempt, delivered: Message) -> DeadLetter:
        message = attempt.message
        return DeadLetter(
            event_id=attempt.result.event_id,
            source_topic=message.topic() or "",
            source_partition=message.partition() or 0,
            source_offset=message.offset() or 0,
            form=attempt.form,
            topic=self.topic,
            kafka_partition=delivered.partition() or 0,
            kafka_offset=delivered.offset() or 0,
        )

    def _note(self) -> None:
        if not self._unnoted:
            return
        with database_errors(), self.engine.begin() as conn:
            write_dead_letters(conn, list(self._unnoted.values()))
        self._unnoted.clear()

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is still queued."""
        self.producer.flush(timeout)
