"""Wire framing of outbound events and the CloudEvents headers of one outbox row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical.events import EventKind
from saleshub.publish.framing import SINGLE_OBJECT_MARKER, SingleObjectFraming, unframe
from saleshub.publish.relay import cloudevents_headers
from saleshub.publish.schemas import EventSchemas


def test_single_object_encoding_is_marker_fingerprint_body() -> None:
    schema = EventSchemas().current[EventKind.ORDER_REJECTED]
    value = SingleObjectFraming().frame("t", schema, b"body")
    assert value == SINGLE_OBJECT_MARKER + schema.fingerprint + b"body"
    framed = unframe(value)
    assert (framed.framing, framed.schema_ref, framed.body) == ("single-object", schema.fingerprint, b"body")


@given(st.integers(min_value=0, max_value=2**31 - 1), st.binary(max_size=64))
def test_registry_framing_is_zero_id_body(schema_id: int, body: bytes) -> None:
    framed = unframe(b"\x00" + schema_id.to_bytes(4, "big") + body)
    assert (framed.framing, framed.schema_ref, framed.body) == ("registry", schema_id, body)


@pytest.mark.parametrize("value", [b"", b"\x01\x02", b"\xc3\x01short", b"{json}"])
def test_unframe_refuses_what_neither_framing_wrote(value: bytes) -> None:
    with pytest.raises(ValueError, match="not an Avro"):
        unframe(value)


def test_schemas_are_known_by_fingerprint_and_unknown_ones_named() -> None:
    schemas = EventSchemas()
    current = schemas.current[EventKind.ORDER_RECEIVED]
    assert schemas.by_id(current.fingerprint_id) is current
    with pytest.raises(KeyError, match="fingerprint"):
        schemas.by_id(12345)


def test_cloudevents_headers_in_binary_mode() -> None:
    event_id, order_id = uuid.uuid4(), uuid.uuid4()
    row = SimpleNamespace(
        event_id=event_id,
        source_system="pyxis",
        kind="order_cancelled",
        occurred_at=datetime(2026, 11, 20, 9, 15, tzinfo=timezone(timedelta(hours=1))),
        subject=str(order_id),
    )
    headers = dict(cloudevents_headers(row, "urn:avro:crc-64-avro:00"))
    assert headers == {
        "ce_specversion": b"1.0",
        "ce_id": str(event_id),
        "ce_source": "/saleshub/pyxis",
        "ce_type": b"com.saleshub.integration.sales.order_cancelled.v1",
        "ce_time": "2026-11-20T08:15:00.000000Z",
        "ce_dataschema": "urn:avro:crc-64-avro:00",
        "content-type": b"application/avro",
        "ce_subject": str(order_id),
    }
    assert datetime.fromisoformat(str(headers["ce_time"])) == row.occurred_at.astimezone(UTC)
