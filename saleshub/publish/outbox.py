"""The transactional outbox: canonical events written in the ingestion transaction, for the relay.

``Outbox.rows_for`` turns what one ingestion transaction did into ``event_outbox`` rows: a created
order → ``order_received``, a changed order → ``order_updated`` (``order_cancelled`` when the change
cancels it), a quarantined or failed event → ``order_rejected``. Duplicates, stale updates and
repeated deliveries publish nothing. The Avro body is encoded here, strictly, so a payload that does
not fit its schema fails the ingestion transaction instead of reaching the relay; the framing, which
depends on the relay's configuration, is added at publication.

Because the rows commit with the order, a committed order always has its event waiting; because the
order row is locked while its event is written, an order's events get increasing ``outbox_id``.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, text

from canonical.avro import order_to_avro
from canonical.events import EventKind
from canonical.model import ServiceOrder
from saleshub.publish.schemas import EventSchemas
from saleshub.store.tables import OUTBOX_LANES, event_outbox

__all__ = ["Backlog", "Outbox", "backlog", "lane_of", "order_key", "purge_published"]


def order_key(order: ServiceOrder) -> str:
    """The Kafka message key of an order's events: ``{country}_{external order id}``."""
    return f"{order.country_code}_{order.external_order_id}"


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
    ) -> dict[str, Any]:
        schema = self.schemas.current[kind]
        return {
            "event_id": record["event_id"],
            "kind": kind.value,
            "topic": kind.topic,
            "message_key": key,
            "lane": lane_of(key),
            "source_system": record["source_system"],
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

    @staticmethod
    def write(conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` in ``conn``'s transaction."""
        if rows:
            conn.execute(event_outbox.insert(), rows)


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits in the outbox: how many rows, the oldest one's creation time, the oldest error."""

    pending: int
    oldest: datetime | None
    last_error: str | None


def backlog(conn: Connection) -> Backlog:
    """The outbox backlog (rows not yet acknowledged by Kafka)."""
    c = event_outbox.c
    pending, oldest = conn.execute(
        select(func.count(), func.min(c.created_at)).where(c.published_at.is_(None))
    ).one()
    last_error = conn.execute(
        select(c.last_error)
        .where(c.published_at.is_(None), c.last_error.is_not(None))
        .order_by(c.outbox_id)
        .limit(1)
    ).scalar()
    return Backlog(int(pending), oldest, last_error)


def purge_published(conn: Connection, *, keep_days: int, dry_run: bool = False) -> int:
    """Delete outbox rows published more than ``keep_days`` ago (or count them); return how many.

    Only published rows go: the broker holds them, and the audit trail keeps the event itself.
    """
    c = event_outbox.c
    older = c.published_at < func.now() - text(f"interval '{int(keep_days)} days'")
    if dry_run:
        return int(conn.execute(select(func.count()).select_from(event_outbox).where(older)).scalar_one())
    return int(conn.execute(delete(event_outbox).where(older)).rowcount)
