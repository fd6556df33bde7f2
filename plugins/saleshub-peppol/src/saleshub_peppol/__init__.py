"""Peppol BIS Ordering 3 for the sales integration hub: UBL 2.1 orders from a Peppol access point.

A Peppol access point delivers each document it receives for the retailer's participant id to
``POST /webhooks/peppol`` (``application/xml``), signed with the hub's webhook signature scheme (the
access point's connector signs with the system's ``whsec_`` secret, ``webhook/peppol``), like any
other system; mutual TLS at the ingress may be added in front, the hub does not rely on it.

Taken: ``Order`` (T01), ``OrderChange`` (T114) and ``OrderCancellation`` (T115) of Peppol BIS
Ordering / Advanced Ordering 3 (``saleshub_peppol.documents``). Refused with a reason (422): any
other document, a document breaking the OASIS UBL 2.1 schema or a Peppol rule (each violation
with its rule id and XPath, ``saleshub_peppol.validation``). A change and a cancellation are new
versions of the order they reference (``cac:OrderReference/cbc:ID``): a change restates the whole
order and is mapped; a cancellation restates no address, lines or totals, so it is classified as a
cancellation by reference (``EventInfo.cancels``: its ``cbc:CancellationNote`` and issue time) and
the hub writes the stored order as ``CANCELLED`` (a cancellation of an order the hub does not hold
is quarantined saying so).

Field mapping of ``Order`` and ``OrderChange``: ``saleshub_peppol/mappings/peppol/order.yaml``
(published in the ``saleshub.mappings``
entry-point group, so the hub loads it with the adapter). The seller's Peppol endpoint id names the
business unit through the ``peppol`` column of the hub's ``crosswalks/business_units.csv`` (a
column a steward adds; until then every order is quarantined saying so).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from lxml import etree
from typing_extensions import override

from adapters.api import (
    Cancellation,
    DocumentRuleError,
    EventInfo,
    EventType,
    SalesChannel,
    SourceAdapter,
    Transport,
    decode_xml,
    shown,
)
from saleshub_peppol.documents import CAC, CBC, KINDS, UBL_PREFIX, DocumentKind
from saleshub_peppol.validation import PeppolValidator

__all__ = ["PeppolAdapter"]

_ID = f"{{{CBC}}}ID"
_REFERENCE = f"{{{CAC}}}OrderReference/{{{CBC}}}ID"
_SEQUENCE = f"{{{CBC}}}SequenceNumberID"
_NOTE = f"{{{CBC}}}CancellationNote"
_ISSUE_DATE = f"{{{CBC}}}IssueDate"
_ISSUE_TIME = f"{{{CBC}}}IssueTime"
_ACCEPTED = ", ".join(kind.name for kind in KINDS.values())
#: The countries whose public buyers send Peppol orders today (OpenPeppol's ordering community).
_COUNTRIES = frozenset({"AT", "BE", "DE", "DK", "ES", "FI", "FR", "IE", "IT", "NL", "NO", "PL", "PT", "SE"})


class PeppolAdapter(SourceAdapter):
    """Adapter for Peppol BIS Ordering 3 documents (UBL 2.1 XML) delivered by an access point."""

    system: ClassVar[str] = "peppol"
    name: ClassVar[str] = "Peppol BIS Ordering 3"
    channels: ClassVar[frozenset[SalesChannel]] = frozenset({SalesChannel.B2B})
    countries: ClassVar[frozenset[str]] = _COUNTRIES
    transports: ClassVar[frozenset[Transport]] = frozenset({"webhook"})
    media_types: ClassVar[frozenset[str]] = frozenset({"application/xml", "text/xml"})
    body_schemas: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "application/xml": {
            "type": "string",
            "description": "a Peppol BIS Ordering 3 document: a UBL 2.1 Order, OrderChange or "
            "OrderCancellation (OASIS UBL 2.1 schema and the Peppol BIS 3 rules)",
        }
    }

    #: One validator per process: the compiled rules are shared by every instance.
    validator: ClassVar[PeppolValidator] = PeppolValidator()

    @override
    def decode(self, body: bytes) -> Any:
        return decode_xml(self.system, body, self.max_body_bytes)

    @override
    def classify(self, document: Any) -> EventInfo:
        kind = self._kind(document)
        violations = self.validator.violations(kind, document)
        if any(v.flag != "warning" for v in violations):
            raise DocumentRuleError(self.system, f"Peppol BIS {kind.name} ({kind.transaction})", violations)
        own_id = _text(document, _ID)
        order_id = _text(document, _REFERENCE) if kind.references_order else own_id
        if not own_id or not order_id or len(own_id) > 128 or len(order_id) > 128:
            raise self.fail(f"the {kind.name}'s ID and the order's ID must be texts of 1 to 128 characters")
        sequence = _text(document, _SEQUENCE)
        cancels = self._cancellation(document) if kind.event_type is EventType.CANCELLED else None
        version: int | None = 0 if kind.name == "Order" else None
        if sequence is not None:
            if not (sequence.isascii() and sequence.isdigit() and len(sequence) <= 18):
                raise self.fail(f"cbc:SequenceNumberID must be a whole number; got {shown(sequence)}")
            version = int(sequence)
        return EventInfo(
            kind.event_type,
            f"{kind.name}:{own_id}",
            version,
            mapping_name=kind.mapping,
            order_key=order_id,
            cancels=cancels,
        )

    def _cancellation(self, document: etree._Element) -> Cancellation:
        """The note and issue time of an ``OrderCancellation`` (schema-valid: ``xs:date``/``xs:time``)."""
        note = _text(document, _NOTE)
        day, time = _text(document, _ISSUE_DATE), _text(document, _ISSUE_TIME)
        if day is None:
            return Cancellation(" ".join(note.split()) if note else None)
        try:
            issued = datetime.fromisoformat(f"{day[:10]}T{time[:8] if time else '00:00:00'}")
        except ValueError:
            raise self.fail(
                f"cbc:IssueDate/cbc:IssueTime must be a date and time; got {shown(day)}"
            ) from None
        return Cancellation(" ".join(note.split()) if note else None, issued.replace(tzinfo=UTC))

    def _kind(self, document: Any) -> DocumentKind:
        tag = getattr(document, "tag", None)
        if not isinstance(document, etree._Element) or not isinstance(tag, str):
            raise self.fail(f"the body must be a UBL 2.1 {_ACCEPTED}")
        kind = KINDS.get(tag)
        if kind is not None:
            return kind
        if tag.startswith(f"{{{UBL_PREFIX}"):
            local = etree.QName(tag).localname
            raise self.fail(
                f"a UBL {shown(local)} is not an order the hub takes; it takes {_ACCEPTED} "
                "(Peppol BIS Ordering 3)"
            )
        raise self.fail(f"the root element must be a UBL 2.1 {_ACCEPTED}; got {shown(tag)}")


def _text(document: etree._Element, path: str) -> str | None:
    found = document.findtext(path)
    return found.strip() or None if found is not None else None
