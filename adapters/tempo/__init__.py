"""Tempo: the Polish sales system (namespaced XML webhooks; a REST API to poll).

Message: ``<tso:ServiceOrderMessage xmlns:tso="urn:tempo:serviceorder:2" messageId action sequence>``
with one ``tso:Order``. ``action`` is ``NEW``, ``CHANGE`` or ``CANCEL``; ``messageId`` is the
idempotency key and ``sequence`` the source version. Schema: ``contracts/xsd/tempo-serviceorder-2.xsd``;
field mapping: ``mappings/tempo/order.yaml``. An element the schema allows once is refused when
repeated (``adapters.tempo.schema``). Polling: ``adapters.tempo.source`` (pages of changed
orders with a continuation token, each wrapped into this message).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from lxml import etree
from typing_extensions import override

from adapters.api import (
    EventInfo,
    EventType,
    SalesChannel,
    SourceAdapter,
    SourceApi,
    Transport,
    decode_xml,
    refuse_repeated_elements,
    shown,
)
from adapters.tempo.schema import SINGLE_CHILDREN
from adapters.tempo.source import TempoChangesApi

__all__ = ["TEMPO_NAMESPACE", "TempoAdapter"]

TEMPO_NAMESPACE = "urn:tempo:serviceorder:2"
_ROOT = f"{{{TEMPO_NAMESPACE}}}ServiceOrderMessage"
_ACTIONS = {"NEW": EventType.CREATED, "CHANGE": EventType.UPDATED, "CANCEL": EventType.CANCELLED}


class TempoAdapter(SourceAdapter):
    """Adapter for Tempo service-order messages (XML)."""

    system: ClassVar[str] = "tempo"
    name: ClassVar[str] = "Tempo"
    channels: ClassVar[frozenset[SalesChannel]] = frozenset(SalesChannel)
    countries: ClassVar[frozenset[str]] = frozenset({"PL"})
    transports: ClassVar[frozenset[Transport]] = frozenset({"webhook", "poll"})
    media_types: ClassVar[frozenset[str]] = frozenset({"application/xml", "text/xml"})
    body_schemas: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "application/xml": {
            "type": "string",
            "description": f"a tso:ServiceOrderMessage in namespace {TEMPO_NAMESPACE} "
            "(schema: contracts/xsd/tempo-serviceorder-2.xsd)",
        }
    }
    source: ClassVar[type[SourceApi] | None] = TempoChangesApi

    @override
    def decode(self, body: bytes) -> Any:
        root = decode_xml(self.system, body, self.max_body_bytes)
        refuse_repeated_elements(self.system, root, TEMPO_NAMESPACE, SINGLE_CHILDREN)
        return root

    @override
    def classify(self, document: Any) -> EventInfo:
        if not isinstance(document, etree._Element) or document.tag != _ROOT:
            tag = getattr(document, "tag", type(document).__name__)
            expected = f"ServiceOrderMessage in {TEMPO_NAMESPACE}"
            raise self.fail(f"the root element must be {expected}; got {shown(tag)}")
        message_id = (document.get("messageId") or "").strip()
        if not message_id or len(message_id) > 128:
            raise self.fail("attribute messageId must be a non-empty text of at most 128 characters")
        action = document.get("action")
        if not isinstance(action, str) or action not in _ACTIONS:
            raise self.fail(f"attribute action must be one of {', '.join(_ACTIONS)}; got {shown(action)}")
        sequence = (document.get("sequence") or "").strip()
        if sequence and not (sequence.isascii() and sequence.isdigit() and len(sequence) <= 18):
            raise self.fail(f"attribute sequence must be a whole number; got {shown(sequence)}")
        number = document.findtext(f"{{{TEMPO_NAMESPACE}}}Order/{{{TEMPO_NAMESPACE}}}OrderNumber")
        return EventInfo(
            _ACTIONS[action],
            message_id,
            int(sequence) if sequence else None,
            order_key=(number or "").strip() or None,
        )
