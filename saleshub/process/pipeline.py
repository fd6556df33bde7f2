"""The one ingestion pipeline every transport uses (webhook, poll, Kafka, replay).

``IngestPipeline.ingest(event)`` does, for one inbound event:

1. outside any transaction, the CPU work: content-type check, decode, classify, map and validate
   (through the system's adapter and the mapping catalog). A ``DataError`` becomes the event's
   structured errors, never an exception to the caller;
2. in **one** transaction: claim the idempotency key (a repeated key returns the original event and
   writes nothing), store the order by the rules of ``saleshub.store.orders``, record the event
   with its exact raw bytes, its status and the mapping that handled it, and put the canonical event
   it causes in the outbox (``saleshub.publish.outbox``) for the Kafka relay.

So a caller that sees a result knows the event is durably committed; a caller that sees an
exception (the database is down) knows nothing was written and may retry the same event.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Text, select
from sqlalchemy.dialects.postgresql import insert

from adapters.base import EventInfo, SourceAdapter
from canonical.events import EventKind
from saleshub.errors import (
    ClassificationError,
    DataError,
    DecodeError,
    MappingError,
)
from saleshub.mapping.engine import CompiledMapping, MappedOrder
from saleshub.publish.outbox import Outbox
from saleshub.store.arrays import array_rows
from saleshub.store.failures import as_retriable
from saleshub.store.orders import OrderOutcome, write_orders
from saleshub.store.tables import integration_event_keys, integration_events

__all__ = [
    "InboundEvent",
    "IngestPipeline",
    "IngestResult",
    "ProcessedEvent",
    "Stage",
    "Status",
    "Transport",
]

log = logging.getLogger(__name__)

Transport = Literal["webhook", "poll", "kafka", "replay"]


class Status(StrEnum):
    """An integration event's status in the audit trail."""

    MAPPED = "mapped"
    DUPLICATE = "duplicate"
    STALE = "stale"
    QUARANTINED = "quarantined"
    FAILED = "failed"


class Stage(StrEnum):
    """Where processing of an event stopped, for quarantined and failed events."""

    CONTENT_TYPE = "content_type"
    DECODE = "decode"
    CLASSIFY = "classify"
    MAPPING = "mapping"
    INTERNAL = "internal"


_OUTCOME_KIND = {
    OrderOutcome.CREATED: EventKind.ORDER_RECEIVED,
    OrderOutcome.UPDATED: EventKind.ORDER_UPDATED,
    OrderOutcome.CANCELLED: EventKind.ORDER_CANCELLED,
}

_OUTCOME_STATUS = {
    OrderOutcome.CREATED: Status.MAPPED,
    OrderOutcome.UPDATED: Status.MAPPED,
    OrderOutcome.CANCELLED: Status.MAPPED,
    OrderOutcome.DUPLICATE: Status.DUPLICATE,
    OrderOutcome.STALE: Status.STALE,
}


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """One payload as a transport received it.

    ``idempotency_key`` is the transport's own key (the ``webhook-id`` header); without one, the
    source's event id is used, and failing that the body's SHA-256.
    """

    system: str
    transport: Transport
    body: bytes
    content_type: str | None
    idempotency_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    replay_of: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened to one event. ``repeated`` means the key was seen before and nothing was written."""

    event_id: uuid.UUID
    status: Status
    repeated: bool = False
    stage: Stage | None = None
    errors: dict[str, Any] | None = None
    hub_order_id: uuid.UUID | None = None
    order_version_no: int | None = None

    @property
    def rejected_input(self) -> bool:
        """Whether the body itself was unusable (wrong type, undecodable, unclassifiable)."""
        return self.stage in (Stage.CONTENT_TYPE, Stage.DECODE, Stage.CLASSIFY)


@dataclass(slots=True)
class ProcessedEvent:
    """The CPU-side result of one event (decoded, classified, mapped or failed), before any write."""

    info: EventInfo | None = None
    mapping: CompiledMapping | None = None
    mapped: MappedOrder | None = None
    stage: Stage | None = None
    errors: dict[str, Any] | None = None


def _error_record(stage: Stage, exc: BaseException) -> dict[str, Any]:
    record: dict[str, Any] = {"stage": stage.value, "error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, DecodeError):
        record["message"] = exc.reason
        if exc.position:
            record["position"] = exc.position
    elif isinstance(exc, ClassificationError):
        record["message"] = exc.reason
    elif isinstance(exc, MappingError):
        record["message"] = f"{len(exc.errors)} field error(s) in mapping {exc.mapping}"
        record["fields"] = [error.as_dict() for error in exc.errors]
    return record


class IngestPipeline:
    """Processes inbound events of any registered system into the store."""

    def __init__(
        self, engine: Engine, adapters: Mapping[str, SourceAdapter], outbox: Outbox | None = None
    ) -> None:
        self.engine = engine
        self.adapters = dict(adapters)
        self.outbox = outbox or Outbox()

    def adapter(self, system: str) -> SourceAdapter | None:
        """The adapter of ``system``, or ``None`` if the hub does not know it."""
        return self.adapters.get(system)

    def process(self, event: InboundEvent, adapter: SourceAdapter) -> ProcessedEvent:
        """Decode, classify and map ``event`` without touching the database."""
        result = ProcessedEvent()
        if not adapter.accepts(event.content_type):
            result.stage = Stage.CONTENT_TYPE
            result.errors = {
                "stage": Stage.CONTENT_TYPE.value,
                "error": "UnsupportedMediaType",
                "message": f"content type {event.content_type!r} is not one of "
                f"{', '.join(sorted(adapter.media_types))}",
            }
            return result
        stage = Stage.DECODE
        try:
            document = adapter.decode(event.body)
            stage = Stage.CLASSIFY
            result.info = adapter.classify(document)
            stage = Stage.MAPPING
            result.mapping = adapter.catalog.get(adapter.system, adapter.mapping_name(document, result.info))
            result.mapped = result.mapping.apply(document)
        except DataError as exc:
            result.stage, result.errors = stage, _error_record(stage, exc)
        except Exception as exc:  # a bug must not lose the event: record it as failed, log the trace
            log.exception("internal error while processing a %s event at stage %s", event.system, stage.value)
            result.stage, result.errors = Stage.INTERNAL, _error_record(Stage.INTERNAL, exc)
            result.errors["at_stage"] = stage.value
        return result

    def ingest(self, event: InboundEvent) -> IngestResult:
        """Process and durably record ``event``; raises ``RetriableError`` if the database is down."""
        adapter = self.adapters[event.system]
        started = time.perf_counter()
        processed = self.process(event, adapter)
        try:
            with self.engine.begin() as conn:
                return self.record(conn, event, processed, started)
        except Exception as exc:
            retriable = as_retriable(exc)
            if retriable is not None:
                raise retriable from exc
            raise

    def record(
        self, conn: Connection, event: InboundEvent, processed: ProcessedEvent, started: float
    ) -> IngestResult:
        """Write one processed event in ``conn``'s transaction (see the module docstring)."""
        return self.record_many(conn, [(event, processed, started)])[0]

    def record_many(
        self, conn: Connection, items: Sequence[tuple[InboundEvent, ProcessedEvent, float]]
    ) -> list[IngestResult]:
        """Write processed events in ``conn``'s transaction, in their order; one result each.

        Set-based, a few statements per round: events are split into rounds in which no idempotency
        key and no order repeats, so a later event of an order sees the earlier one's result.
        """
        results: dict[int, IngestResult] = {}
        pending = list(enumerate(items))
        while pending:
            round_: list[tuple[int, InboundEvent, ProcessedEvent, float, str]] = []
            later: list[tuple[int, tuple[InboundEvent, ProcessedEvent, float]]] = []
            keys: set[tuple[str, str]] = set()
            orders: set[uuid.UUID] = set()
            for index, (event, processed, started) in pending:
                key = (event.system, _key_of(event, processed))
                order = processed.mapped.order.hub_order_id if processed.mapped else None
                if key in keys or (order is not None and order in orders) or later:
                    later.append((index, (event, processed, started)))
                    continue
                keys.add(key)
                if order is not None:
                    orders.add(order)
                round_.append((index, event, processed, started, key[1]))
            results.update(self._record_round(conn, round_))
            pending = later
        return [results[index] for index in range(len(items))]

    def _record_round(
        self, conn: Connection, round_: list[tuple[int, InboundEvent, ProcessedEvent, float, str]]
    ) -> list[tuple[int, IngestResult]]:
        ids = {index: uuid.uuid4() for index, *_ in round_}
        conn.execute(
            _CLAIM_KEYS,
            [
                {
                    "source_system": event.system,
                    "idempotency_key": key,
                    "event_id": ids[index],
                    "received_at": event.received_at,
                }
                for index, event, _, _, key in round_
            ],
        )
        owners = conn.execute(
            _KEY_OWNERS,
            {
                "source_system_array": [event.system for _, event, *_ in round_],
                "idempotency_key_array": [key for *_, key in round_],
            },
        ).scalars()
        claimed = set(owners) & set(ids.values())
        done: list[tuple[int, IngestResult]] = []
        to_write = []
        for index, event, processed, started, key in round_:
            if ids[index] not in claimed:
                done.append((index, self._repeated(conn, event.system, key)))
            else:
                to_write.append((index, event, processed, started, key))
        mapped = [(p.mapped, ids[i]) for i, _, p, _, _ in to_write if p.mapped is not None]
        writes = iter(write_orders(conn, mapped) if mapped else [])
        rows, outbox_rows = [], []
        for index, event, processed, started, key in to_write:
            event_id = ids[index]
            if processed.mapped is None:
                status = Status.FAILED if processed.stage is Stage.INTERNAL else Status.QUARANTINED
                result = IngestResult(event_id, status, stage=processed.stage, errors=processed.errors)
                outbox_rows.append(self._rejection(event, processed, result))
            else:
                written = next(writes)
                result = IngestResult(
                    event_id,
                    _OUTCOME_STATUS[written.outcome],
                    hub_order_id=written.hub_order_id,
                    order_version_no=written.version_no,
                )
                kind = _OUTCOME_KIND.get(written.outcome)
                if kind is not None:
                    outbox_rows.append(
                        self.outbox.order_row(
                            kind,
                            event_id=event_id,
                            occurred_at=event.received_at,
                            order=processed.mapped.order,
                            version_no=written.version_no,
                            mapping=processed.mapped.mapping.label,
                        )
                    )
            rows.append(_event_row(event, processed, result, key, started))
            done.append((index, result))
        if rows:
            conn.execute(integration_events.insert(), rows)
        self.outbox.write(conn, outbox_rows)
        return done

    def _rejection(
        self, event: InboundEvent, processed: ProcessedEvent, result: IngestResult
    ) -> dict[str, Any]:
        return self.outbox.rejection_row(
            event_id=result.event_id,
            occurred_at=event.received_at,
            system=event.system,
            transport=event.transport,
            status=result.status.value,
            errors=processed.errors or {},
            event_type=processed.info.event_type.value if processed.info else None,
            mapping=processed.mapping.identity.label if processed.mapping else None,
        )

    @staticmethod
    def _repeated(conn: Connection, system: str, key: str) -> IngestResult:
        keys, events = integration_event_keys.c, integration_events.c
        original = conn.execute(
            select(events.event_id, events.status, events.hub_order_id, events.order_version_no)
            .join_from(
                integration_event_keys,
                integration_events,
                (events.event_id == keys.event_id) & (events.received_at == keys.received_at),
            )
            .where(keys.source_system == system, keys.idempotency_key == key)
        ).one()
        return IngestResult(
            original.event_id,
            Status(original.status),
            repeated=True,
            hub_order_id=original.hub_order_id,
            order_version_no=original.order_version_no,
        )


# No RETURNING, for the same reason as the order insert (saleshub.store.orders): a key is ours when
# its stored event id is the fresh one we tried to claim it with.
_CLAIM_KEYS = insert(integration_event_keys).on_conflict_do_nothing()
_WANTED = array_rows(("source_system", Text()), ("idempotency_key", Text()))
# A join on the key pairs (each an index probe), not `= ANY(...)` tests that a scan repeats per row.
_KEY_OWNERS = select(integration_event_keys.c.event_id).join_from(
    _WANTED,
    integration_event_keys,
    (integration_event_keys.c.source_system == _WANTED.c.source_system)
    & (integration_event_keys.c.idempotency_key == _WANTED.c.idempotency_key),
)


def _key_of(event: InboundEvent, processed: ProcessedEvent) -> str:
    key = event.idempotency_key or (processed.info.idempotency_key if processed.info else None)
    return key or "sha256:" + hashlib.sha256(event.body).hexdigest()


def _event_row(
    event: InboundEvent, processed: ProcessedEvent, result: IngestResult, key: str, started: float
) -> dict[str, Any]:
    mapping, info = processed.mapping, processed.info
    return {
        "event_id": result.event_id,
        "received_at": event.received_at,
        "source_system": event.system,
        "transport": event.transport,
        "event_type": info.event_type.value if info else None,
        "content_type": event.content_type,
        "raw_body": None if event.replay_of else event.body,
        "body_sha256": hashlib.sha256(event.body).digest(),
        "body_size": len(event.body),
        "idempotency_key": key,
        "source_event_key": info.idempotency_key if info else None,
        "headers": dict(event.headers),
        "status": result.status.value,
        "errors": result.errors,
        "mapping": mapping.identity.label if mapping else None,
        "mapping_hash": mapping.identity.content_hash if mapping else None,
        "hub_order_id": result.hub_order_id,
        "order_version_no": result.order_version_no,
        "processing_ms": round((time.perf_counter() - started) * 1000, 3),
        "replay_of": event.replay_of,
    }
