"""The ERP (Oracle Fusion Cloud Order Management): B2B and back-office orders, polled over REST.

Documents follow the "Sales Orders for Order Hub" REST resource (``salesOrdersForOrderHub``): header
attributes such as ``OrderNumber``, ``SourceTransactionNumber``, ``BuyingPartyName``,
``TransactionalCurrencyCode`` with ``lines``, ``billToCustomer`` and ``shipToCustomer`` children.
One polled item is one event: its idempotency key is ``OrderKey`` (or ``OrderNumber``), its
``LastUpdateDate`` and a digest of its content (``content_digest``), since Oracle keeps
``LastUpdateDate`` to the second and ``SourceTransactionRevisionNumber`` need not change with every
edit: two changes within one second are two events, and the same item read again is one. The source
version is ``SourceTransactionRevisionNumber``. An order whose
``StatusCode`` is ``CANCELED`` or whose ``CanceledFlag`` is true is a cancellation.
Field mapping: ``mappings/erp/order.yaml``. Polling: ``adapters.erp.source`` (paged by key).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from typing_extensions import override

from adapters.api import (
    BIGINT_MAX,
    EventInfo,
    EventType,
    SalesChannel,
    SourceAdapter,
    SourceApi,
    Transport,
    decode_json,
    shown,
)
from adapters.erp.source import OrderHubApi

__all__ = ["ERP_ORDER", "ErpAdapter", "content_digest"]

_TEXT_ID = {"type": "string", "minLength": 1, "maxLength": 128}

#: One Oracle Fusion sales order (an item of the Order Hub REST resource).
ERP_ORDER: dict[str, Any] = {
    "title": "ErpSalesOrder",
    "type": "object",
    "required": ["OrderNumber", "LastUpdateDate"],
    "properties": {
        "OrderNumber": _TEXT_ID,
        "OrderKey": _TEXT_ID,
        "LastUpdateDate": {"type": "string", "format": "date-time"},
        "SourceTransactionRevisionNumber": {"type": "integer", "minimum": 0},
        "StatusCode": {"type": "string"},
    },
    "additionalProperties": True,
}


def content_digest(document: Any) -> str:
    """A digest of a decoded document's content, independent of key order and whitespace (32 hex).

    Numbers with a fraction are decoded as ``Decimal`` and written as their text; text is written
    with ASCII escapes, so any string the decoder let through can be hashed.
    """
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class ErpAdapter(SourceAdapter):
    """Adapter for Oracle Fusion sales orders (JSON items of the Order Hub REST resource)."""

    system: ClassVar[str] = "erp"
    name: ClassVar[str] = "Oracle Fusion Order Hub"
    channels: ClassVar[frozenset[SalesChannel]] = frozenset({SalesChannel.B2B})
    countries: ClassVar[frozenset[str]] = frozenset({"ES", "FR", "IT", "PL"})
    #: Polled; the webhook endpoint takes the same order items pushed (e.g. by an integration flow).
    transports: ClassVar[frozenset[Transport]] = frozenset({"poll", "webhook"})
    body_schemas: ClassVar[Mapping[str, Mapping[str, Any]]] = {"application/json": ERP_ORDER}
    media_types: ClassVar[frozenset[str]] = frozenset(
        {"application/json", "application/vnd.oracle.adf.resourceitem+json"}
    )
    source: ClassVar[type[SourceApi] | None] = OrderHubApi

    @override
    def decode(self, body: bytes) -> Any:
        return decode_json(self.system, body, self.max_body_bytes)

    @override
    def classify(self, document: Any) -> EventInfo:
        if not isinstance(document, dict):
            raise self.fail("the body must be one sales order as a JSON object")
        key = document.get("OrderKey") or document.get("OrderNumber")
        if not isinstance(key, str) or not key.strip():
            raise self.fail("OrderKey or OrderNumber must be a non-empty text")
        updated = document.get("LastUpdateDate")
        if not isinstance(updated, str) or not updated.strip():
            raise self.fail("LastUpdateDate must be a date-time text")
        revision = document.get("SourceTransactionRevisionNumber")
        if revision is not None and (type(revision) is not int or not 0 <= revision <= BIGINT_MAX):
            raise self.fail(
                f"SourceTransactionRevisionNumber must be a whole number from 0 to {BIGINT_MAX}; "
                f"got {shown(revision)}"
            )
        if document.get("StatusCode") == "CANCELED" or document.get("CanceledFlag") is True:
            event_type = EventType.CANCELLED
        elif revision in (None, 0, 1):
            event_type = EventType.CREATED
        else:
            event_type = EventType.UPDATED
        number = document.get("OrderNumber")
        order_key = number.strip() or None if isinstance(number, str) else None
        identity = f"{key.strip()}@{updated.strip()}#{content_digest(document)}"
        return EventInfo(event_type, identity, revision, order_key=order_key)
