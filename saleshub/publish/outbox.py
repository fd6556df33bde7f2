"""The transactional outbox: canonical events written in the ingestion transaction, for the relay.

``Outbox.order_row`` and ``Outbox.rejection_row`` turn what one ingestion transaction did into
``event_outbox`` rows: a created order → ``order_received``, a changed order → ``order_updated``
(``order_cancelled`` when the change cancels it), a quarantined or failed event → ``order_rejected``;
``Outbox.seal_row`` turns a new audit seal into ``audit_sealed``, written in the sealing transaction.
Duplicates, stale updates and repeated deliveries publish nothing. The Avro body is encoded here,
strictly, so a payload that does not fit its schema fails the ingestion transaction instead of
reaching the relay; the framing, which depends on the relay's configuration, is added at publication.

Because the rows commit with the order, a committed order always has its event waiting; because the
order row is locked while its event is written, an order's events get increasing ``outbox_id``.
Every accepted version of an order produces exactly one event, so an order event's
``previous_version_no`` (the version it follows, ``None`` for version 1) is ``version_no - 1``: a
consumer merging the order topics can tell a gap or an overtaking from the record alone.

The rows are built here (Avro body, key, lane); the SQL that writes and reads them is in
``saleshub.store.outbox``.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from canonical.avro import order_to_avro
from canonical.events import EventKind
from canonical.model import ServiceOrder
from saleshub.publish.schemas import EventSchemas
from saleshub.store.outbox import OUTBOX_LANES

__all__ = ["AUDIT_SOURCE", "ERASURE_SOURCE", "Outbox", "lane_of", "order_key"]

#: The ``source_system`` (CloudEvents ``ce_source`` ``/saleshub/audit``) and message key of seals: one
#: key, so the seals are published in the order they were made.
AUDIT_SOURCE = "audit"


def order_key(order: ServiceOrder) -> str:
    """The Kafka message key of an order's events: ``{country}_{external order id}``."""
    return f"{order.country_code}_{order.external_order_id}"


#: The ``source_system`` (and CloudEvents source ``/saleshub/hub``) of events the hub itself originates.
ERASURE_SOURCE = "hub"


def lane_of(key: str) -> int:
    """The outbox lane of a message key (stable across processes and versions)."""
    return zlib.crc32(key.encode("utf-8")) % OUTBOX_LANES


class Outbox:
    """Builds outbox rows with the current writer schemas."""

    def __init__(self, schemas: EventSchemas | None = None) -> None:
        self.schemas = schemas or EventSchemas()

    def _row(
        self,
        kind: EventKind,
        key: str,
        record: dict[str, Any],
        subject: str | None,
        source: str | None = None,
    ) -> dict[str, Any]:
        schema = self.schemas.current[kind]
        return {
            "event_id": record["event_id"],
            "kind": kind.value,
            "topic": kind.topic,
            "message_key": key,
            "lane": lane_of(key),
            "source_system": source or record["source_system"],
            "subject": subject,
            "occurred_at": record["occurred_at"],
            "payload": schema.encode(record),
            "schema_fingerprint": schema.fingerprint_id,
        }

    def order_row(
        self,
        kind: EventKind,
        *,
        event_id: uuid.UUID,
        occurred_at: datetime,
        order: ServiceOrder,
        version_no: int,
        mapping: str,
    ) -> dict[str, Any]:
        """The row of an order event (received, updated or cancelled)."""
        record = {
            "event_id": event_id,
            "occurred_at": occurred_at,
            "source_system": order.source_system,
            "hub_order_id": order.hub_order_id,
            "version_no": version_no,
            "previous_version_no": version_no - 1 if version_no > 1 else None,
            "mapping": mapping,
            "order": order_to_avro(order),
        }
        return self._row(kind, order_key(order), record, str(order.hub_order_id))

    def rejection_row(
        self,
        *,
        event_id: uuid.UUID,
        occurred_at: datetime,
        system: str,
        transport: str,
        status: str,
        errors: Mapping[str, Any],
        event_type: str | None,
        mapping: str | None,
    ) -> dict[str, Any]:
        """The row of an ``order_rejected`` event; keyed by system and event (no order is known)."""
        record = {
            "event_id": event_id,
            "occurred_at": occurred_at,
            "source_system": system,
            "transport": transport,
            "status": status,
            "stage": str(errors.get("at_stage") or errors.get("stage") or "unknown"),
            "error": str(errors.get("error", "")),
            "message": str(errors.get("message", "")),
            "event_type": event_type,
            "mapping": mapping,
            "field_errors": [
                {key: str(item.get(key, "")) for key in ("target", "source", "rule", "value")}
                for item in errors.get("fields", [])
            ],
        }
        return self._row(EventKind.ORDER_REJECTED, f"{system}_{event_id}", record, None)

    def erasure_row(
        self,
        *,
        event_id: uuid.UUID,
        occurred_at: datetime,
        erasure_id: int,
        orders: list[tuple[str, str, uuid.UUID]],
    ) -> dict[str, Any]:
        """The row of a ``customer_erased`` event: the orders ``(system, external id, hub id)`` erased."""
        record = {
            "event_id": event_id,
            "occurred_at": occurred_at,
            "source_system": ERASURE_SOURCE,
            "erasure_id": erasure_id,
            "orders": [
                {"source_system": system, "external_order_id": external, "hub_order_id": hub}
                for system, external, hub in orders
            ],
        }
        return self._row(EventKind.CUSTOMER_ERASED, f"erasure_{erasure_id}", record, None)

    def seal_row(
        self,
        *,
        sealed_at: datetime,
        period_start: datetime,
        period_end: datetime,
        events_count: int,
        events_root: bytes,
        actions_count: int,
        actions_root: bytes,
        root: bytes,
        previous_chain: bytes,
        chain: bytes,
    ) -> dict[str, Any]:
        """The row of an ``audit_sealed`` event; its id is derived from the chain hash (one per seal)."""
        record = {
            "event_id": uuid.UUID(bytes=chain[:16], version=4),
            "occurred_at": sealed_at,
            "period_start": period_start,
            "period_end": period_end,
            "events_count": events_count,
            "events_root": events_root.hex(),
            "actions_count": actions_count,
            "actions_root": actions_root.hex(),
            "root": root.hex(),
            "previous_chain": previous_chain.hex(),
            "chain": chain.hex(),
        }
        return self._row(EventKind.AUDIT_SEALED, AUDIT_SOURCE, record, None, source=AUDIT_SOURCE)
