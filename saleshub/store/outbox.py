"""Every SQL statement of the transactional outbox and its relay, and the broker's recorded state.

Writers call ``write_outbox_rows`` in their own transaction (the order and its event commit
together). A relay works in rounds of two short transactions, never holding one open while it
waits on the broker:

* ``claim_round`` leases some lanes (``outbox_lanes.leased_by`` / ``leased_until``; a lane whose
  lease expired, because its relay died, is free again) and reads, in those lanes, the **oldest
  unpublished event of each message key**, and only that one: a key's next event becomes eligible
  once the one before it is marked published, so it is never produced before the broker
  acknowledged its predecessor, whatever topic either went to;
* ``finish_round`` marks the acknowledged events published (with partition and offset), counts a
  failed attempt on the others, and ends the lease.

``record_broker_state`` and ``broker_state`` keep the one ``kafka_broker_state`` row: since when the
relays have found the broker unreachable, for ``saleshub status``. ``backlog`` and
``purge_published`` serve ``status`` and ``db retention``. Unavailable-database errors leave every
function as ``RetriableError`` (``saleshub.store.failures``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, Row, delete, func, select, text, update

from saleshub.store.failures import database_errors
from saleshub.store.personal import Erased, PersonalData, personal_data
from saleshub.store.tables import OUTBOX_LANES, event_outbox, kafka_broker_state

__all__ = [
    "OUTBOX_LANES",
    "Backlog",
    "BrokerState",
    "Delivered",
    "OutboxClaim",
    "OutboxRow",
    "backlog",
    "broker_state",
    "claim_round",
    "finish_round",
    "outbox_holds",
    "purge_published",
    "record_broker_state",
    "write_outbox_rows",
]

_LEASE_LANES = text(
    "UPDATE outbox_lanes AS l SET leased_by = :relay, leased_until = now() + make_interval(secs => :lease) "
    "FROM (SELECT lane FROM outbox_lanes "
    "      WHERE leased_until IS NULL OR leased_until < now() OR leased_by = :relay "
    "      ORDER BY (lane + :shift) % :lanes FOR UPDATE SKIP LOCKED LIMIT :count) AS free "
    "WHERE l.lane = free.lane RETURNING l.lane"
)
# The oldest unpublished event of each key among the lanes' first ``window`` unpublished events.
# Reading a prefix in outbox_id order keeps the cost bounded, and is exact: every older event of a
# key in the prefix is itself in the prefix, so a key's first event there is its oldest unpublished.
_PENDING_HEADS = text(
    "WITH recent AS ("
    "  SELECT outbox_id, message_key FROM event_outbox "
    "  WHERE published_at IS NULL AND lane = ANY(CAST(:lanes AS smallint[])) "
    "  ORDER BY outbox_id LIMIT :window), "
    "heads AS (SELECT min(outbox_id) AS outbox_id FROM recent GROUP BY message_key ORDER BY 1 LIMIT :limit) "
    "SELECT o.outbox_id, o.event_id, o.kind, o.topic, o.message_key, o.source_system, o.subject, "
    "o.occurred_at, o.payload, o.schema_fingerprint, o.data_key_id "
    "FROM heads JOIN event_outbox AS o USING (outbox_id) ORDER BY o.outbox_id"
)
_RELEASE_LANES = text(
    "UPDATE outbox_lanes SET leased_by = NULL, leased_until = NULL "
    "WHERE lane = ANY(CAST(:lanes AS smallint[])) AND leased_by = :relay"
)
_MARK_PUBLISHED = text(
    "UPDATE event_outbox AS o SET published_at = now(), kafka_partition = v.p, kafka_offset = v.o, "
    "attempts = o.attempts + 1, last_error = NULL "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:partitions AS integer[]), CAST(:offsets AS bigint[])) "
    "AS v(id, p, o) WHERE o.outbox_id = v.id"
)
_MARK_ERASED = text(
    "UPDATE event_outbox SET published_at = now(), "
    "last_error = 'not sent: the subject was erased before publication' "
    "WHERE outbox_id = ANY(CAST(:ids AS bigint[]))"
)
_MARK_FAILED = text(
    "UPDATE event_outbox SET attempts = attempts + 1, last_error = :error "
    "WHERE outbox_id = ANY(CAST(:ids AS bigint[]))"
)


_WRITE_COLUMNS = (
    ("event_id", "uuid"),
    ("kind", "text"),
    ("topic", "text"),
    ("message_key", "text"),
    ("lane", "smallint"),
    ("source_system", "text"),
    ("subject", "text"),
    ("occurred_at", "timestamptz"),
    ("payload", "bytea"),
    ("schema_fingerprint", "bigint"),
    ("data_key_id", "uuid"),
)
_NAMES = ", ".join(name for name, _ in _WRITE_COLUMNS)
# One statement per call, rows in the given order (so an order's events get increasing outbox ids):
# the arrays travel once instead of a round of parameter handling per row.
_WRITE = text(
    f"INSERT INTO event_outbox ({_NAMES}) SELECT {_NAMES} FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _WRITE_COLUMNS)
    + f") WITH ORDINALITY AS t({_NAMES}, position) ORDER BY position"
)


def write_outbox_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert outbox ``rows`` (built by ``saleshub.publish.outbox.Outbox``) in ``conn``'s transaction.

    A row with a ``data_key`` (an order event: the order's personal data) has its payload sealed.
    """
    if not rows:
        return
    sealed = []
    for row in rows:
        key = row.get("data_key")
        if key is None:
            sealed.append({**row, "data_key_id": None})
        else:
            payload = PersonalData.seal_payload(key, row["payload"], row["event_id"])
            sealed.append({**row, "payload": payload, "data_key_id": key.key_id})
    conn.execute(_WRITE, {name: [row[name] for row in sealed] for name, _ in _WRITE_COLUMNS})


@dataclass(frozen=True, slots=True)
class OutboxClaim:
    """What a relay leased: lanes, and their events to produce (at most one per message key).

    Each row has ``outbox_id, event_id, kind, topic, message_key, source_system, subject,
    occurred_at, payload, schema_fingerprint``, in ``outbox_id`` order.
    """

    lanes: list[int]
    rows: Sequence[OutboxRow]


class OutboxRow(NamedTuple):
    """One outbox event to produce, its payload opened (the Avro bytes)."""

    outbox_id: int
    event_id: uuid.UUID
    kind: str
    topic: str
    message_key: str
    source_system: str
    subject: str | None
    occurred_at: datetime
    payload: bytes
    schema_fingerprint: int


def outbox_holds(conn: Connection, event_id: uuid.UUID) -> bool:
    """Whether an event of this id is in the outbox (waiting, or published and not yet purged)."""
    found = conn.execute(select(event_outbox.c.outbox_id).where(event_outbox.c.event_id == event_id)).first()
    return found is not None


def claim_round(
    engine: Engine,
    relay: uuid.UUID,
    *,
    lanes: int,
    shift: int,
    lease_seconds: float,
    limit: int,
) -> OutboxClaim:
    """Lease up to ``lanes`` free lanes (from lane ``shift`` on) and read their eligible events.

    One short transaction. Lanes without an eligible event are released in it at once.
    """
    with database_errors(), engine.begin() as conn:
        leased = list(
            conn.execute(
                _LEASE_LANES,
                {
                    "relay": relay,
                    "lease": lease_seconds,
                    "shift": shift,
                    "lanes": OUTBOX_LANES,
                    "count": lanes,
                },
            ).scalars()
        )
        if not leased:
            return OutboxClaim([], [])
        rows = _opened(
            conn, conn.execute(_PENDING_HEADS, {"lanes": leased, "window": limit * 4, "limit": limit}).all()
        )
        if not rows:
            conn.execute(_RELEASE_LANES, {"lanes": leased, "relay": relay})
            return OutboxClaim([], [])
        return OutboxClaim(leased, rows)


def _opened(conn: Connection, rows: Sequence[Row[Any]]) -> list[OutboxRow]:
    """The rows with their payloads opened; a row whose subject was erased is marked, not sent.

    Its data key is gone, so its payload can never be sent: it is finished at once (``published_at``
    set, no partition, ``last_error`` saying why) rather than holding up its key's later events.
    """
    payloads = personal_data(conn).open_payloads(conn, [(r.payload, r.data_key_id, r.event_id) for r in rows])
    pairs = list(zip(rows, payloads, strict=True))
    erased = [row.outbox_id for row, payload in pairs if isinstance(payload, Erased)]
    if erased:
        conn.execute(_MARK_ERASED, {"ids": erased})
    return [
        OutboxRow(
            row.outbox_id,
            row.event_id,
            row.kind,
            row.topic,
            row.message_key,
            row.source_system,
            row.subject,
            row.occurred_at,
            payload,
            row.schema_fingerprint,
        )
        for row, payload in pairs
        if isinstance(payload, bytes)
    ]


@dataclass(frozen=True, slots=True)
class Delivered:
    """One acknowledged outbox event: where the broker put it."""

    outbox_id: int
    partition: int
    offset: int


def finish_round(
    engine: Engine,
    relay: uuid.UUID,
    lanes: Sequence[int],
    *,
    published: Sequence[Delivered],
    failed: Sequence[int],
    error: str,
) -> None:
    """Mark ``published`` events published, count a failed attempt (``error``) on ``failed``, end the lease.

    One short transaction. Published events are marked even if the lease expired meanwhile: the
    broker holds them.
    """
    with database_errors(), engine.begin() as conn:
        if published:
            conn.execute(
                _MARK_PUBLISHED,
                {
                    "ids": [d.outbox_id for d in published],
                    "partitions": [d.partition for d in published],
                    "offsets": [d.offset for d in published],
                },
            )
        if failed:
            conn.execute(_MARK_FAILED, {"ids": list(failed), "error": error[:2000]})
        if lanes:
            conn.execute(_RELEASE_LANES, {"lanes": list(lanes), "relay": relay})


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits in the outbox: how many rows, the oldest one's creation time, the oldest error."""

    pending: int
    oldest: datetime | None
    last_error: str | None


def backlog(conn: Connection) -> Backlog:
    """The outbox backlog (rows not yet acknowledged by Kafka)."""
    c = event_outbox.c
    with database_errors():
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
    older = c.published_at < func.now() - func.make_interval(0, 0, 0, int(keep_days))
    with database_errors():
        if dry_run:
            query = select(func.count()).select_from(event_outbox).where(older)
            return int(conn.execute(query).scalar_one())
        return int(conn.execute(delete(event_outbox).where(older)).rowcount)


@dataclass(frozen=True, slots=True)
class BrokerState:
    """Whether the relays reach the broker: unreachable since when (``None``: reachable), last check."""

    unreachable_since: datetime | None
    last_error: str | None
    checked_at: datetime | None


def record_broker_state(engine: Engine, *, since: datetime | None, error: str | None = None) -> None:
    """Record a probe's outcome: ``since`` is when the broker was found unreachable, ``None`` if it answered.

    An outage already recorded keeps its first ``since``.
    """
    c = kafka_broker_state.c
    values: dict[str, Any] = {"checked_at": func.now(), "last_error": error}
    values["unreachable_since"] = None if since is None else func.coalesce(c.unreachable_since, since)
    with database_errors(), engine.begin() as conn:
        conn.execute(update(kafka_broker_state).values(values))


def broker_state(conn: Connection) -> BrokerState:
    """The broker's state as the relays last recorded it (all ``None`` if no relay ever probed)."""
    c = kafka_broker_state.c
    with database_errors():
        row = conn.execute(select(c.unreachable_since, c.last_error, c.checked_at)).first()
    if row is None:
        return BrokerState(None, None, None)
    return BrokerState(row.unreachable_since, row.last_error, row.checked_at)
