"""Pyxis: the sales system of the ES, FR and IT stores and web shops (JSON webhooks, Kafka events).

Envelope: ``{"eventId", "eventType": "order.created|order.updated|order.cancelled", "occurredAt",
"order": {..., "revision"}}``. The idempotency key is ``eventId``; the source version is
``order.revision``. Field mapping: ``mappings/pyxis/order.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from typing_extensions import override

from adapters.api import (
    BIGINT_MAX,
    EventInfo,
    EventType,
    SalesChannel,
    SourceAdapter,
    Transport,
    decode_json,
    shown,
)

__all__ = ["PYXIS_EVENT", "PyxisAdapter"]

_TEXT_ID = {"type": "string", "minLength": 1, "maxLength": 128}

#: A Pyxis order event (webhook or Kafka record); the order's fields are mapped by mappings/pyxis.
PYXIS_EVENT: dict[str, Any] = {
    "title": "PyxisOrderEvent",
    "type": "object",
    "required": ["eventId", "eventType", "order"],
    "properties": {
        "eventId": {**_TEXT_ID, "description": "the idempotency key when no webhook-id is sent"},
        "eventType": {"type": "string", "enum": ["order.created", "order.updated", "order.cancelled"]},
        "occurredAt": {"type": "string", "format": "date-time"},
        "order": {
            "type": "object",
            "required": ["orderId"],
            "properties": {
                "orderId": _TEXT_ID,
                "revision": {"type": "integer", "minimum": 0, "maximum": 9_223_372_036_854_775_807},
            },
            "additionalProperties": True,
        },
    },
    "additionalProperties": True,
}

_EVENT_TYPES = {
    "order.created": EventType.CREATED,
    "order.updated": EventType.UPDATED,
    "order.cancelled": EventType.CANCELLED,
}


class PyxisAdapter(SourceAdapter):
    """Adapter for Pyxis order events (JSON)."""

    system: ClassVar[str] = "pyxis"
    name: ClassVar[str] = "Pyxis"
    channels: ClassVar[frozenset[SalesChannel]] = frozenset(SalesChannel)
    countries: ClassVar[frozenset[str]] = frozenset({"ES", "FR", "IT"})
    transports: ClassVar[frozenset[Transport]] = frozenset({"webhook", "kafka"})
    media_types: ClassVar[frozenset[str]] = frozenset({"application/json"})
    body_schemas: ClassVar[Mapping[str, Mapping[str, Any]]] = {"application/json": PYXIS_EVENT}

    @override
    def decode(self, body: bytes) -> Any:
        return decode_json(self.system, body, self.max_body_bytes)

    @override
    def classify(self, document: Any) -> EventInfo:
        if not isinstance(document, dict):
            raise self.fail("the body must be a JSON object with eventId, eventType and order")
        event_id = document.get("eventId")
        if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > 128:
            raise self.fail("eventId must be a non-empty text of at most 128 characters")
        kind = document.get("eventType")
        if not isinstance(kind, str) or kind not in _EVENT_TYPES:
            raise self.fail(f"eventType must be one of {', '.join(_EVENT_TYPES)}; got {shown(kind)}")
        order = document.get("order")
        if not isinstance(order, dict):
            raise self.fail("order must be a JSON object")
        revision = order.get("revision")
        if revision is not None and (type(revision) is not int or not 0 <= revision <= BIGINT_MAX):
            raise self.fail(
                f"order.revision must be a whole number from 0 to {BIGINT_MAX}; got {shown(revision)}"
            )
        order_id = order.get("orderId")
        order_key = order_id.strip() or None if isinstance(order_id, str) else None
        return EventInfo(_EVENT_TYPES[kind], event_id.strip(), revision, order_key=order_key)
