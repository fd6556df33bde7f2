"""The hub's outbound event contracts: one Avro record per kind of event, and the Kafka topic of each.

Five kinds, each on its own topic named ``{domain}.{entity}.{action}``:

=================  ====================================  =====================================
kind               topic                                 when
=================  ====================================  =====================================
order_received     ``integration.sales.order_received``   a source order is stored for the first time
order_updated      ``integration.sales.order_updated``    a stored order changed (new version)
order_cancelled    ``integration.sales.order_cancelled``  a stored order changed to ``CANCELLED``
order_rejected     ``integration.sales.order_rejected``   an inbound event was quarantined or failed
customer_erased    ``integration.sales.customer_erased``  a data subject's personal data was erased
audit_sealed       ``integration.sales.audit_sealed``     an hour of the audit trail was sealed
=================  ====================================  =====================================

The three order events carry the whole canonical order (``saleshub.canonical.ServiceOrder``) with
the hub's event id, the order's version number, the version it follows and the mapping that produced
it, so a consumer never needs to call back and can check that it applies an order's events in order.
A rejection carries where processing stopped and the field errors, with personal values already
masked by the mapping engine. An erasure names the orders whose personal data the hub destroyed, so
that every consumer erases its copies too; it carries no personal value.
A seal carries the sealed hour, its row counts, Merkle roots and chain hash (hex), so the
roots are kept outside the hub's database as well.

``event_schema(kind)`` derives each schema from the canonical model; the committed versions live in
``contracts/avro/events/<kind>/v<N>.avsc`` (a test keeps the newest equal to this derivation and each
version backward compatible with the one before; evolution rules in ``contracts/avro/README.md``).
"""

from __future__ import annotations

import copy
from enum import StrEnum
from typing import Any

from canonical.avro import service_order_schema
from canonical.enums import TRANSPORTS

__all__ = ["EVENT_NAMESPACE", "EventKind", "event_schema"]

EVENT_NAMESPACE = "saleshub.events"

_UUID = {"type": "string", "logicalType": "uuid"}
_TRANSPORTS_DOC = f"{', '.join(TRANSPORTS[:-1])} or {TRANSPORTS[-1]}."
_TIMESTAMP = {"type": "long", "logicalType": "timestamp-micros"}


class EventKind(StrEnum):
    """A kind of outbound event; its value is the action part of its topic name."""

    ORDER_RECEIVED = "order_received"
    ORDER_UPDATED = "order_updated"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_REJECTED = "order_rejected"
    CUSTOMER_ERASED = "customer_erased"
    AUDIT_SEALED = "audit_sealed"

    @property
    def topic(self) -> str:
        """The Kafka topic, ``{domain}.{entity}.{action}``."""
        return f"integration.sales.{self.value}"

    @property
    def ce_type(self) -> str:
        """The CloudEvents ``type`` attribute (reverse-DNS style, the same words as the topic)."""
        return f"com.saleshub.integration.sales.{self.value}.v1"

    @property
    def record_name(self) -> str:
        """The Avro record name, e.g. ``OrderReceived``."""
        return "".join(part.capitalize() for part in self.value.split("_"))


_DOCS = {
    EventKind.ORDER_RECEIVED: "A source order was stored by the hub for the first time.",
    EventKind.ORDER_UPDATED: "A stored order changed: this is its new version.",
    EventKind.ORDER_CANCELLED: "A stored order changed to status CANCELLED: this is its new version.",
    EventKind.ORDER_REJECTED: "An inbound event could not be turned into an order; it is quarantined.",
    EventKind.CUSTOMER_ERASED: "A data subject's personal data was erased: erase it in these orders too.",
    EventKind.AUDIT_SEALED: "An hour of the audit trail (integration events, operator actions) was sealed.",
}


def _order_event_fields() -> list[dict[str, Any]]:
    return [
        {"name": "event_id", "type": _UUID, "doc": "The hub's integration event id (also ce_id)."},
        {"name": "occurred_at", "type": _TIMESTAMP, "doc": "When the hub received the source event."},
        {"name": "source_system", "type": "string"},
        {"name": "hub_order_id", "type": _UUID},
        {"name": "version_no", "type": "int", "doc": "The order's version in the hub, from 1."},
        {"name": "mapping", "type": "string", "doc": "The mapping that produced this version."},
        {"name": "order", "type": copy.deepcopy(service_order_schema())},
        {
            "name": "previous_version_no",
            "type": ["null", "int"],
            "default": None,
            "doc": (
                "The version this event follows: version_no - 1, null for version 1 (and when a record "
                "written with v1, which lacks it, is read). Each version of an order has exactly one "
                "event, on the topic of its kind: a consumer that has not yet applied this version "
                "of the order is early and should wait for it (see docs/consuming-order-events.md)."
            ),
        },
    ]


def _rejected_fields() -> list[dict[str, Any]]:
    field_error = {
        "type": "record",
        "name": "FieldError",
        "doc": "One field the mapping could not fill; personal values are masked.",
        "fields": [
            {"name": "target", "type": "string"},
            {"name": "source", "type": "string"},
            {"name": "rule", "type": "string"},
            {"name": "value", "type": "string"},
        ],
    }
    optional_string = ["null", "string"]
    return [
        {"name": "event_id", "type": _UUID, "doc": "The hub's integration event id (also ce_id)."},
        {"name": "occurred_at", "type": _TIMESTAMP, "doc": "When the hub received the source event."},
        {"name": "source_system", "type": "string"},
        {"name": "transport", "type": "string", "doc": _TRANSPORTS_DOC},
        {"name": "status", "type": "string", "doc": "quarantined (bad input) or failed (hub error)."},
        {"name": "stage", "type": "string", "doc": "content_type, decode, classify, mapping, internal."},
        {"name": "error", "type": "string", "doc": "The error type."},
        {"name": "message", "type": "string"},
        {"name": "event_type", "type": optional_string, "default": None},
        {"name": "mapping", "type": optional_string, "default": None},
        {"name": "field_errors", "type": {"type": "array", "items": field_error}, "default": []},
    ]


def _erased_fields() -> list[dict[str, Any]]:
    erased_order = {
        "type": "record",
        "name": "ErasedOrder",
        "doc": "An order whose personal fields (customer, address lines, notes) were erased.",
        "fields": [
            {"name": "source_system", "type": "string"},
            {"name": "external_order_id", "type": "string"},
            {"name": "hub_order_id", "type": _UUID},
        ],
    }
    return [
        {"name": "event_id", "type": _UUID, "doc": "The erasure's event id (also ce_id)."},
        {"name": "occurred_at", "type": _TIMESTAMP, "doc": "When the hub erased the data."},
        {"name": "source_system", "type": "string", "doc": "Always 'hub': the hub itself erased."},
        {"name": "erasure_id", "type": "long", "doc": "The erasure's number in the hub's register."},
        {"name": "orders", "type": {"type": "array", "items": erased_order}},
    ]


def _sealed_fields() -> list[dict[str, Any]]:
    def digest(name: str, doc: str) -> dict[str, Any]:
        return {"name": name, "type": "string", "doc": f"{doc} (SHA-256, lower-case hex)."}

    return [
        {
            "name": "event_id",
            "type": _UUID,
            "doc": "This announcement's id (also ce_id), from the chain hash.",
        },
        {"name": "occurred_at", "type": _TIMESTAMP, "doc": "When the hub sealed the hour."},
        {"name": "period_start", "type": _TIMESTAMP, "doc": "Start of the sealed hour (UTC)."},
        {"name": "period_end", "type": _TIMESTAMP, "doc": "End of the sealed hour (exclusive)."},
        {"name": "events_count", "type": "int", "doc": "Integration events received in the hour."},
        digest("events_root", "Merkle root of those events"),
        {"name": "actions_count", "type": "int", "doc": "Operator actions taken in the hour."},
        digest("actions_root", "Merkle root of those actions"),
        digest("root", "The hour's root: both roots hashed together"),
        digest("previous_chain", "Chain hash of the seal of the hour before"),
        digest("chain", "This seal's chain hash"),
    ]


_FIELDS = {
    EventKind.ORDER_REJECTED: _rejected_fields,
    EventKind.CUSTOMER_ERASED: _erased_fields,
    EventKind.AUDIT_SEALED: _sealed_fields,
}


def event_schema(kind: EventKind) -> dict[str, Any]:
    """The Avro schema of ``kind``'s events, self-contained (every named type defined inline)."""
    fields = _FIELDS.get(kind, _order_event_fields)()
    return {
        "type": "record",
        "name": kind.record_name,
        "namespace": EVENT_NAMESPACE,
        "doc": _DOCS[kind],
        "fields": fields,
    }


if __name__ == "__main__":  # print one kind's current schema: python -m canonical.events order_received
    import json
    import sys

    sys.stdout.write(json.dumps(event_schema(EventKind(sys.argv[1])), indent=2) + "\n")
