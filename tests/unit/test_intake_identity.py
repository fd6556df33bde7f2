"""An inbound event's identity (its idempotency key) and which rejected events intake stopped."""

from __future__ import annotations

import uuid

from adapters.base import EventInfo
from canonical.enums import EventType
from saleshub.receive.intake import Admission, InboundEvent
from saleshub.receive.recorder import Receipt
from saleshub.store.events import Stage, Status


def kafka(body: bytes, offset: int) -> InboundEvent:
    return InboundEvent("pyxis", "kafka", body, "application/json", position=f"orders:0:{offset}")


def test_a_body_without_an_event_id_is_identified_by_its_position_and_its_hash() -> None:
    refused = Admission(stage=Stage.DECODE, errors={"stage": "decode"})
    first, second = refused.idempotency_key(kafka(b"", 3)), refused.idempotency_key(kafka(b"", 4))
    assert first != second, "the same bytes at two offsets are two events"
    assert first == refused.idempotency_key(kafka(b"", 3)), "a record consumed again is the same event"
    assert first.startswith("kafka:orders:0:3:sha256:")
    assert refused.idempotency_key(kafka(b"x", 3)) != first, "other bytes at a reused offset"


def test_an_event_id_wins_over_the_position_and_a_webhook_keeps_the_body_hash() -> None:
    classified = Admission(info=EventInfo(EventType.CREATED, "evt-1", 1, order_key="PX-1"))
    assert classified.idempotency_key(kafka(b"{}", 3)) == "evt-1"
    assert classified.idempotency_key(kafka(b"{}", 9)) == "evt-1", "a re-sent event is one event"
    webhook = InboundEvent("pyxis", "webhook", b"{}", "application/json")
    assert Admission(stage=Stage.DECODE).idempotency_key(webhook).startswith("sha256:")


def test_stopped_at_intake_is_refusal_or_a_bug_at_intake_never_a_mapping_failure() -> None:
    def receipt(status: Status, stage: Stage, **errors: str) -> Receipt:
        return Receipt(uuid.uuid4(), status, stage=stage, errors={"stage": stage.value, **errors})

    assert receipt(Status.QUARANTINED, Stage.CONTENT_TYPE).stopped_at_intake
    assert receipt(Status.QUARANTINED, Stage.CLASSIFY).stopped_at_intake
    assert receipt(Status.FAILED, Stage.INTERNAL, at_stage="decode").stopped_at_intake
    assert not receipt(Status.QUARANTINED, Stage.MAPPING).stopped_at_intake
    assert not receipt(Status.FAILED, Stage.INTERNAL, at_stage="mapping").stopped_at_intake
    assert not receipt(Status.FAILED, Stage.INTERNAL, at_stage="store").stopped_at_intake
