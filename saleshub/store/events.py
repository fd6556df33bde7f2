"""The audit trail's writes: recording raw events, the processing queue, and each event's outcome.

Two moments of an event's life write here:

* **record** (every transport, in one transaction per batch): ``record_events`` claims the
  idempotency keys, stores the raw events with status ``accepted`` (or ``quarantined`` when intake
  refused the body), puts the accepted ones on the processing queue and wakes the processors when
  the transaction commits (PostgreSQL ``NOTIFY``), all in one statement; a repeated key is answered
  with the original event (``repeated_events``, the repeats of a batch in one query);
* **process** (a processor, one transaction per batch): ``claim_lanes`` locks some lanes
  (``FOR UPDATE SKIP LOCKED``, so several processors never share a lane), ``queued_events`` reads
  their events in the order received, ``finish_events`` sets each event's final status and
  ``dequeue`` removes the queue rows.

An order's events share a lane (``lane_of``), so they are processed one after another in the order
they were queued.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Double,
    Integer,
    Text,
    case,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import aliased

from canonical.enums import Transport
from saleshub.errors import ClassificationError, DecodeError, DocumentRuleError, MappingError, printable
from saleshub.store.arrays import array_rows
from saleshub.store.failures import first_line
from saleshub.store.personal import Erased, personal_data
from saleshub.store.tables import (
    PROCESSOR_LANES,
    event_queue,
    integration_event_keys,
    integration_events,
)

__all__ = [
    "CHANNEL",
    "PROCESSOR_LANES",
    "EventOutcome",
    "QueuedEvent",
    "Stage",
    "Status",
    "StoredEvent",
    "Transport",
    "body_columns",
    "body_key_pair",
    "claim_lanes",
    "dequeue",
    "dismiss",
    "error_record",
    "event_outcomes",
    "finish_events",
    "lane_of",
    "open_bodies",
    "open_bodies_why",
    "queue_depth",
    "queued_events",
    "record_events",
    "repeated_events",
    "select_event_keys",
    "stored_events",
    "supersede",
    "trace_carriers",
]

#: The ``LISTEN``/``NOTIFY`` channel on which recording wakes the processors.
CHANNEL = "saleshub_events"


class Status(StrEnum):
    """An integration event's status in the audit trail."""

    ACCEPTED = "accepted"
    MAPPED = "mapped"
    DUPLICATE = "duplicate"
    STALE = "stale"
    QUARANTINED = "quarantined"
    FAILED = "failed"
    DISMISSED = "dismissed"  # a quarantined or failed event an operator closed as junk (with a reason)


class Stage(StrEnum):
    """Where an event stopped, for quarantined and failed events."""

    CONTENT_TYPE = "content_type"
    DECODE = "decode"
    CLASSIFY = "classify"
    MAPPING = "mapping"
    INTERNAL = "internal"


_STAGES = frozenset(stage.value for stage in Stage)


def error_record(stage: Stage, exc: BaseException) -> dict[str, Any]:
    """The JSON error record of an event stopped at ``stage`` by ``exc`` (the ``errors`` column)."""
    record: dict[str, Any] = {"stage": stage.value, "error": type(exc).__name__, "message": first_line(exc)}
    if isinstance(exc, DecodeError):
        record["message"] = exc.reason
        if exc.position:
            record["position"] = exc.position
    elif isinstance(exc, ClassificationError):
        record["message"] = exc.reason
        if isinstance(exc, DocumentRuleError):
            record["violations"] = [
                {
                    "rule": printable(v.rule),
                    "location": printable(v.location),
                    "message": printable(v.message),
                }
                for v in exc.violations
            ]
    elif isinstance(exc, MappingError):
        record["message"] = f"{len(exc.errors)} field error(s) in mapping {exc.mapping}"
        record["fields"] = [error.as_dict() for error in exc.errors]
    return record


def lane_of(system: str, order_key: str) -> int:
    """The processing lane of an order (stable across processes and versions)."""
    return zlib.crc32(f"{system}:{order_key}".encode()) % PROCESSOR_LANES


_K = integration_event_keys.c
_E = integration_events.c
_Q = event_queue.c


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """An event's state as stored: its status and, once processed, what it did to its order."""

    event_id: uuid.UUID
    status: Status
    stage: Stage | None = None
    errors: dict[str, Any] | None = None
    hub_order_id: uuid.UUID | None = None
    order_version_no: int | None = None
    body_sha256: bytes | None = None


_OUTCOME_COLUMNS = (
    _E.event_id,
    _E.status,
    _E.errors,
    _E.hub_order_id,
    _E.order_version_no,
    _E.body_sha256,
)


def _outcome(row: Any) -> EventOutcome:
    errors = row.errors
    stage = errors.get("stage") if isinstance(errors, dict) else None
    return EventOutcome(
        row.event_id,
        Status(row.status),
        stage=Stage(stage) if isinstance(stage, str) and stage in _STAGES else None,
        errors=errors,
        hub_order_id=row.hub_order_id,
        order_version_no=row.order_version_no,
        body_sha256=bytes(row.body_sha256) if row.body_sha256 is not None else None,
    )


def repeated_events(conn: Connection, system: str, keys: Sequence[str]) -> dict[str, EventOutcome]:
    """The events that hold ``system``'s ``keys``, as they stand now, by key (one query)."""
    if not keys:
        return {}
    rows = conn.execute(
        select(_K.idempotency_key, *_OUTCOME_COLUMNS)
        .join_from(
            integration_event_keys,
            integration_events,
            (_E.event_id == _K.event_id) & (_E.received_at == _K.received_at),
        )
        .where(_K.source_system == system, _K.idempotency_key.in_(list(keys)))
    )
    return {row.idempotency_key: _outcome(row) for row in rows}


def event_outcomes(conn: Connection, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EventOutcome]:
    """The stored state of these events, by id (events not found are left out)."""
    if not event_ids:
        return {}
    rows = conn.execute(select(*_OUTCOME_COLUMNS).where(_E.event_id.in_(list(event_ids))))
    return {row.event_id: _outcome(row) for row in rows}


_RECORD = text(
    """
    WITH input AS (
        SELECT * FROM unnest(
            CAST(:event_id AS uuid[]), CAST(:received_at AS timestamptz[]), CAST(:source_system AS text[]),
            CAST(:transport AS text[]), CAST(:event_type AS text[]), CAST(:content_type AS text[]),
            CAST(:raw_body AS bytea[]), CAST(:body_sha256 AS bytea[]), CAST(:body_size AS int[]),
            CAST(:idempotency_key AS text[]), CAST(:source_event_key AS text[]),
            CAST(:order_key AS text[]), CAST(:headers AS jsonb[]), CAST(:status AS text[]),
            CAST(:errors AS jsonb[]), CAST(:replay_of AS uuid[]), CAST(:lane AS smallint[]),
            CAST(:processing_ms AS float8[]), CAST(:data_key_id AS uuid[])
        ) WITH ORDINALITY AS t(event_id, received_at, source_system, transport, event_type,
               content_type, raw_body, body_sha256, body_size, idempotency_key, source_event_key,
               order_key, headers, status, errors, replay_of, lane, processing_ms, data_key_id, position)
    ),
    claimed AS (
        INSERT INTO integration_event_keys (source_system, idempotency_key, event_id, received_at)
        SELECT source_system, idempotency_key, event_id, received_at FROM input
        ON CONFLICT DO NOTHING
        RETURNING event_id
    ),
    stored AS (
        INSERT INTO sales_system_integration_events (
            event_id, received_at, source_system, transport, event_type, content_type, raw_body,
            body_sha256, body_size, idempotency_key, source_event_key, order_key, headers, status,
            errors, replay_of, processing_ms, data_key_id)
        SELECT i.event_id, i.received_at, i.source_system, i.transport, i.event_type, i.content_type,
               i.raw_body, i.body_sha256, i.body_size, i.idempotency_key, i.source_event_key,
               i.order_key, i.headers, i.status, i.errors, i.replay_of, i.processing_ms, i.data_key_id
        FROM input i JOIN claimed c ON c.event_id = i.event_id
        RETURNING event_id
    ),
    queued AS (
        INSERT INTO event_queue (event_id, received_at, source_system, lane)
        SELECT i.event_id, i.received_at, i.source_system, i.lane
        FROM input i JOIN claimed c ON c.event_id = i.event_id
        WHERE i.lane IS NOT NULL
        ORDER BY i.position
        RETURNING 1
    )
    SELECT c.event_id, (SELECT pg_notify(:channel, '') WHERE EXISTS (SELECT 1 FROM queued)) AS woken
    FROM claimed c
    """
)
_RECORD_COLUMNS = (
    "event_id",
    "received_at",
    "source_system",
    "transport",
    "event_type",
    "content_type",
    "raw_body",
    "body_sha256",
    "body_size",
    "idempotency_key",
    "source_event_key",
    "order_key",
    "headers",
    "status",
    "errors",
    "replay_of",
    "lane",
    "processing_ms",
)


def record_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Claim, store and (where ``lane`` is set) queue event rows in one statement; the ids that got in.

    Each row holds the event's columns plus ``lane`` (``None``: not queued). A row whose
    idempotency key is taken writes nothing. The processors are notified on commit when anything
    was queued. One statement whatever the batch size: the arrays travel once and PostgreSQL does
    the rest, where three pipelined inserts cost a Python round of parameter handling per row each.
    """
    if not rows:
        return set()
    params: dict[str, Any] = {column: [row[column] for row in rows] for column in _RECORD_COLUMNS}
    params["raw_body"], params["data_key_id"] = _sealed_bodies(conn, rows)
    for column in ("headers", "errors"):
        params[column] = [None if value is None else json.dumps(value) for value in params[column]]
    params["channel"] = CHANNEL
    return {row.event_id for row in conn.execute(_RECORD, params)}


def body_columns(original: Any) -> tuple[Any, Any, Any]:
    """The columns of an event's body (a replay's is its original's): ``body``, ``body_key``, ``body_sha``.

    ``original`` is an alias of the events table outer-joined on ``replay_of``.
    """
    own = _E.raw_body.is_not(None)
    return (
        func.coalesce(_E.raw_body, original.c.raw_body).label("body"),
        case((own, _E.data_key_id), else_=original.c.data_key_id).label("body_key"),
        case((own, _E.body_sha256), else_=original.c.body_sha256).label("body_sha"),
    )


def open_bodies(conn: Connection, rows: Sequence[Any]) -> list[bytes | None]:
    """The clear bodies of rows with ``body_columns``; ``None`` for a purged or an erased one.

    ``SealBrokenError`` (a body altered in the database) is raised.
    """
    return [body for body, _ in open_bodies_why(conn, rows)]


def open_bodies_why(conn: Connection, rows: Sequence[Any]) -> list[tuple[bytes | None, str | None]]:
    """Each row's clear body, or ``None`` and why it cannot be had (purged, erased, altered)."""
    opened = personal_data(conn).open_bodies(conn, [(r.body, r.body_key, r.body_sha) for r in rows])
    result: list[tuple[bytes | None, str | None]] = []
    for body in opened:
        if isinstance(body, bytes):
            result.append((body, None))
        elif isinstance(body, Erased):
            result.append((None, "its subject's personal data was erased; the event cannot be processed"))
        elif body is None:
            result.append((None, "the raw body is no longer kept (retention); the event cannot be processed"))
        else:
            result.append((None, str(body)))
    return result


def body_key_pair(system: str, order_key: str | None, event_id: uuid.UUID) -> tuple[str, str]:
    """Whose data key seals an event's body: its order's, or its own when its order is unknown."""
    return (system, order_key if order_key else f"event:{event_id}")


def _sealed_bodies(
    conn: Connection, rows: Sequence[dict[str, Any]]
) -> tuple[list[bytes | None], list[uuid.UUID | None]]:
    """Each row's raw body sealed with its order's data key, and that key's id."""
    port = personal_data(conn)
    pairs = {
        index: body_key_pair(row["source_system"], row["order_key"], row["event_id"])
        for index, row in enumerate(rows)
        if row["raw_body"] is not None
    }
    keys = port.order_keys(conn, pairs.values())
    bodies: list[bytes | None] = []
    key_ids: list[uuid.UUID | None] = []
    for index, row in enumerate(rows):
        pair = pairs.get(index)
        if pair is None:
            bodies.append(None)
            key_ids.append(None)
            continue
        key = keys[pair]
        bodies.append(port.seal_body(key, row["raw_body"], row["body_sha256"]))
        key_ids.append(key.key_id)
    return bodies, key_ids


_CLAIM_LANES = text(
    "SELECT lane FROM processor_lanes ORDER BY (lane + :shift) % :lanes FOR UPDATE SKIP LOCKED LIMIT :count"
)


def claim_lanes(conn: Connection, shift: int, count: int) -> list[int]:
    """Lock up to ``count`` free lanes for this transaction, starting the search at ``shift``."""
    return list(
        conn.execute(_CLAIM_LANES, {"shift": shift, "lanes": PROCESSOR_LANES, "count": count}).scalars()
    )


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """A recorded event waiting to be processed, with its body (a replay's comes from its original)."""

    queue_id: int
    attempts: int
    event_id: uuid.UUID
    received_at: datetime
    system: str
    transport: str
    content_type: str | None
    body: bytes | None
    replay_of: uuid.UUID | None
    trace: dict[str, str] | None = None  # the recording span's carrier (``headers`` → ``trace``)
    body_missing: str | None = None  # why ``body`` is None: purged, erased, or altered


def queued_events(conn: Connection, lanes: Sequence[int], limit: int) -> list[QueuedEvent]:
    """The oldest queued events of ``lanes`` (which the caller has locked), in the order queued."""
    original = aliased(integration_events)
    query = (
        select(
            _Q.queue_id,
            _Q.attempts,
            _E.event_id,
            _E.received_at,
            _E.source_system,
            _E.transport,
            _E.content_type,
            _E.replay_of,
            *body_columns(original),
            _E.headers["trace"].label("trace"),
        )
        .select_from(event_queue)
        .join(integration_events, (_E.event_id == _Q.event_id) & (_E.received_at == _Q.received_at))
        .outerjoin(original, original.c.event_id == _E.replay_of)
        .where(_Q.lane.in_(list(lanes)))
        .order_by(_Q.queue_id)
        .limit(limit)
    )
    rows = conn.execute(query).all()
    return [
        QueuedEvent(
            row.queue_id,
            row.attempts,
            row.event_id,
            row.received_at,
            row.source_system,
            row.transport,
            row.content_type,
            body,
            row.replay_of,
            row.trace if isinstance(row.trace, dict) else None,
            why,
        )
        for row, (body, why) in zip(rows, open_bodies_why(conn, rows), strict=True)
    ]


_FINISHED = array_rows(
    ("event_id", UUID(as_uuid=True)),
    ("received_at", DateTime(timezone=True)),
    ("status", Text()),
    ("event_type", Text()),
    ("errors", JSONB()),
    ("mapping", Text()),
    ("mapping_hash", Text()),
    ("hub_order_id", UUID(as_uuid=True)),
    ("order_version_no", Integer()),
    ("processing_ms", Double()),
    ("trace", JSONB()),
)
_FINISH = (
    update(integration_events)
    .where(_E.event_id == _FINISHED.c.event_id, _E.received_at == _FINISHED.c.received_at)
    .values(
        status=_FINISHED.c.status,
        event_type=func.coalesce(_FINISHED.c.event_type, _E.event_type),
        errors=_FINISHED.c.errors,
        mapping=_FINISHED.c.mapping,
        mapping_hash=_FINISHED.c.mapping_hash,
        hub_order_id=_FINISHED.c.hub_order_id,
        order_version_no=_FINISHED.c.order_version_no,
        processing_ms=_FINISHED.c.processing_ms,
        processed_at=func.clock_timestamp(),
        # The processor's carrier replaces the recording one: the relay continues from the processor.
        headers=case(
            (
                func.jsonb_typeof(_FINISHED.c.trace) == "object",
                _E.headers.op("||")(func.jsonb_build_object("trace", _FINISHED.c.trace)),
            ),
            else_=_E.headers,
        ),
    )
)
_FINISH_KEYS = (
    "event_id",
    "received_at",
    "status",
    "event_type",
    "errors",
    "mapping",
    "mapping_hash",
    "hub_order_id",
    "order_version_no",
    "processing_ms",
    "trace",
)


def finish_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Set each processed event's final columns (``_FINISH_KEYS``), one statement for the batch.

    A row's ``trace`` (optional: the processor's span carrier) replaces the event's ``headers`` →
    ``trace``, so the relay continues the trace from the processor.
    """
    if rows:
        conn.execute(_FINISH, {f"{key}_array": [row.get(key) for row in rows] for key in _FINISH_KEYS})


_DEQUEUE_IDS = array_rows(("queue_id", BigInteger()))


def dequeue(conn: Connection, queue_ids: Sequence[int]) -> None:
    """Remove processed events from the queue."""
    if queue_ids:
        conn.execute(
            delete(event_queue).where(_Q.queue_id.in_(select(_DEQUEUE_IDS.c.queue_id))),
            {"queue_id_array": list(queue_ids)},
        )


_EVENT_KEYS = array_rows(("event_id", UUID(as_uuid=True)), ("received_at", DateTime(timezone=True)))
_TRACES = select(_E.event_id, _E.headers["trace"].label("trace")).join_from(
    _EVENT_KEYS,
    integration_events,
    (_E.event_id == _EVENT_KEYS.c.event_id) & (_E.received_at == _EVENT_KEYS.c.received_at),
)


def trace_carriers(
    conn: Connection, keys: Sequence[tuple[uuid.UUID, datetime]]
) -> dict[uuid.UUID, dict[str, str]]:
    """The stored trace carrier (``headers`` → ``trace``) of each ``(event id, received at)`` that has one."""
    if not keys:
        return {}
    rows = conn.execute(
        _TRACES,
        {"event_id_array": [key for key, _ in keys], "received_at_array": [at for _, at in keys]},
    )
    return {row.event_id: row.trace for row in rows if isinstance(row.trace, dict)}


def queue_depth(conn: Connection) -> tuple[int, datetime | None]:
    """How many events wait for a processor, and when the oldest was queued."""
    count, oldest = conn.execute(select(func.count(), func.min(_Q.created_at))).one()
    return int(count), oldest


_OPEN_STATUSES = (Status.QUARANTINED.value, Status.FAILED.value)


def select_event_keys(
    conn: Connection,
    *,
    event_id: uuid.UUID | None = None,
    system: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    open_only: bool = True,
    limit: int | None = None,
) -> list[tuple[uuid.UUID, datetime]]:
    """The ``(event_id, received_at)`` keys of the matching events, oldest first.

    ``open_only``: quarantined or failed events not yet superseded by a replay. ``event_id`` alone
    selects that one event, whatever its status.
    """
    query = select(_E.event_id, _E.received_at).order_by(_E.received_at, _E.event_id)
    if event_id is not None:
        query = query.where(_E.event_id == event_id)
    else:
        if open_only:
            query = query.where(_E.status.in_(_OPEN_STATUSES), _E.superseded_by.is_(None))
        if system is not None:
            query = query.where(_E.source_system == system)
        if since is not None:
            query = query.where(_E.received_at >= since)
        if until is not None:
            query = query.where(_E.received_at < until)
    if limit is not None:
        query = query.limit(limit)
    return [(row.event_id, row.received_at) for row in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A stored event's body and what is needed to take it in again (a replay's body is its original's)."""

    event_id: uuid.UUID
    received_at: datetime
    system: str
    content_type: str | None
    replay_of: uuid.UUID | None
    body: bytes | None


def stored_events(conn: Connection, keys: Sequence[tuple[uuid.UUID, datetime]]) -> list[StoredEvent]:
    """The events with these ``(event_id, received_at)`` keys, oldest first."""
    original = aliased(integration_events)
    query = (
        select(
            _E.event_id,
            _E.received_at,
            _E.source_system,
            _E.content_type,
            _E.replay_of,
            *body_columns(original),
        )
        .select_from(_EVENT_KEYS)
        .join(
            integration_events,
            (_E.event_id == _EVENT_KEYS.c.event_id) & (_E.received_at == _EVENT_KEYS.c.received_at),
        )
        .outerjoin(original, original.c.event_id == _E.replay_of)
        .order_by(_E.received_at, _E.event_id)
    )
    params = {"event_id_array": [key[0] for key in keys], "received_at_array": [key[1] for key in keys]}
    rows = conn.execute(query, params).all()
    return [
        StoredEvent(row.event_id, row.received_at, row.source_system, row.content_type, row.replay_of, body)
        for row, body in zip(rows, open_bodies(conn, rows), strict=True)
    ]


_SUPERSEDING = array_rows(
    ("event_id", UUID(as_uuid=True)),
    ("received_at", DateTime(timezone=True)),
    ("superseded_by", UUID(as_uuid=True)),
)
_SUPERSEDE = (
    update(integration_events)
    .where(_E.event_id == _SUPERSEDING.c.event_id, _E.received_at == _SUPERSEDING.c.received_at)
    .values(superseded_by=_SUPERSEDING.c.superseded_by)
)


def supersede(conn: Connection, pairs: Sequence[tuple[uuid.UUID, datetime, uuid.UUID]]) -> None:
    """Mark ``(event id, received at)`` as re-run by the replay event named third."""
    if pairs:
        conn.execute(
            _SUPERSEDE,
            {
                "event_id_array": [event_id for event_id, _, _ in pairs],
                "received_at_array": [at for _, at, _ in pairs],
                "superseded_by_array": [by for _, _, by in pairs],
            },
        )


_DISMISS = text(
    "UPDATE sales_system_integration_events SET status = 'dismissed', "
    "errors = coalesce(errors, '{}'::jsonb) || jsonb_build_object('dismissed', jsonb_build_object("
    "  'reason', CAST(:reason AS text), 'previous_status', status, 'at', now())) "
    "WHERE event_id = :event_id AND status IN ('quarantined', 'failed') AND superseded_by IS NULL "
    "RETURNING errors -> 'dismissed' ->> 'previous_status'"
)


def dismiss(conn: Connection, event_id: uuid.UUID, reason: str) -> str | None:
    """Close an open quarantined or failed event as junk, keeping ``reason`` in its errors.

    Returns the status it had, or ``None`` when it is not an open quarantined or failed event.
    """
    previous: str | None = conn.execute(_DISMISS, {"event_id": event_id, "reason": reason}).scalar()
    return previous
