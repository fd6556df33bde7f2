"""Replay: re-run stored events through the current mappings, in batches, recording each re-run.

A replay is a new integration event (transport ``replay``) whose ``replay_of`` names the original
(always the first event, also when a replay is replayed again) and whose raw body is not copied: it
stays with the original. The original gets ``superseded_by`` set, so "all open quarantined events"
shrinks as problems are fixed, while its own status and errors stay as they were for the audit.

Mapping runs outside the transaction; each batch is written in one transaction, so a database
failure leaves the batch's originals un-superseded and the same command can simply be run again.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, DateTime, func, select, update
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import aliased

from saleshub.process.pipeline import InboundEvent, IngestPipeline
from saleshub.store.arrays import array_rows
from saleshub.store.queries import AnyRow
from saleshub.store.tables import integration_events

__all__ = ["ReplaySelection", "ReplaySummary", "Replayer", "select_events"]

_E = integration_events.c
_OPEN_STATUSES = ("quarantined", "failed")


@dataclass(frozen=True, slots=True)
class ReplaySelection:
    """Which stored events to replay; by default every open quarantined or failed event."""

    event_id: uuid.UUID | None = None
    system: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    open_only: bool = True
    limit: int | None = None


@dataclass
class ReplaySummary:
    """Counts of what the replay did, by resulting status."""

    selected: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    missing_body: int = 0
    seconds: float = 0.0

    @property
    def replayed(self) -> int:
        """Events that were re-run (those with a body left)."""
        return sum(self.statuses.values())


_EVENT_KEYS = (("event_id", UUID(as_uuid=True)), ("received_at", DateTime(timezone=True)))
_SUPERSEDING = array_rows(*_EVENT_KEYS, ("superseded_by", UUID(as_uuid=True)))
_SUPERSEDE = (
    update(integration_events)
    .where(_E.event_id == _SUPERSEDING.c.event_id, _E.received_at == _SUPERSEDING.c.received_at)
    .values(superseded_by=_SUPERSEDING.c.superseded_by)
)


def select_events(conn: Connection, selection: ReplaySelection) -> list[tuple[uuid.UUID, datetime]]:
    """The ``(event_id, received_at)`` keys of the selected events, oldest first."""
    query = select(_E.event_id, _E.received_at).order_by(_E.received_at, _E.event_id)
    if selection.event_id is not None:
        query = query.where(_E.event_id == selection.event_id)
    else:
        if selection.open_only:
            query = query.where(_E.status.in_(_OPEN_STATUSES), _E.superseded_by.is_(None))
        if selection.system is not None:
            query = query.where(_E.source_system == selection.system)
        if selection.since is not None:
            query = query.where(_E.received_at >= selection.since)
        if selection.until is not None:
            query = query.where(_E.received_at < selection.until)
    if selection.limit is not None:
        query = query.limit(selection.limit)
    return [(row.event_id, row.received_at) for row in conn.execute(query)]


def _chunks(
    items: Sequence[tuple[uuid.UUID, datetime]], size: int
) -> Iterator[Sequence[tuple[uuid.UUID, datetime]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Replayer:
    """Replays selected events through ``pipeline`` (and so through its current mappings)."""

    def __init__(self, pipeline: IngestPipeline, batch_size: int = 500) -> None:
        self.pipeline, self.engine, self.batch_size = pipeline, pipeline.engine, batch_size

    def replay(
        self, keys: Sequence[tuple[uuid.UUID, datetime]], progress: Callable[[int], None] | None = None
    ) -> ReplaySummary:
        """Replay the events with these keys; ``progress`` is called with each batch's size."""
        summary = ReplaySummary(selected=len(keys))
        started = time.perf_counter()
        for batch in _chunks(keys, self.batch_size):
            self._replay_batch(batch, summary)
            if progress is not None:
                progress(len(batch))
        summary.seconds = time.perf_counter() - started
        return summary

    @staticmethod
    def _load(conn: Connection, batch: Sequence[tuple[uuid.UUID, datetime]]) -> list[AnyRow]:
        # The body of a replay lives with its original: join the original when replay_of is set.
        original = aliased(integration_events)
        wanted = array_rows(*_EVENT_KEYS)
        query = (
            select(
                _E.event_id,
                _E.received_at,
                _E.source_system,
                _E.content_type,
                _E.replay_of,
                func.coalesce(_E.raw_body, original.c.raw_body).label("body"),
            )
            .select_from(wanted)
            .join(
                integration_events,
                (_E.event_id == wanted.c.event_id) & (_E.received_at == wanted.c.received_at),
            )
            .outerjoin(original, original.c.event_id == _E.replay_of)
            .order_by(_E.received_at, _E.event_id)
        )
        params = {"event_id_array": [key[0] for key in batch], "received_at_array": [key[1] for key in batch]}
        return list(conn.execute(query, params))

    def _replay_batch(self, batch: Sequence[tuple[uuid.UUID, datetime]], summary: ReplaySummary) -> None:
        with self.engine.connect() as conn:
            rows = self._load(conn, batch)
        work = []
        for row in rows:
            adapter = self.pipeline.adapter(row.source_system)
            if row.body is None or adapter is None:
                summary.missing_body += 1
                continue
            root: uuid.UUID = row.replay_of or row.event_id
            inbound = InboundEvent(
                system=row.source_system,
                transport="replay",
                body=bytes(row.body),
                content_type=row.content_type,
                idempotency_key=f"replay:{root}:{uuid.uuid4()}",
                replay_of=root,
            )
            begun = time.perf_counter()
            processed = self.pipeline.process(inbound, adapter)
            work.append((row.event_id, row.received_at, inbound, processed, begun))
        with self.engine.begin() as conn:
            results = self.pipeline.record_many(
                conn, [(inbound, processed, begun) for _, _, inbound, processed, begun in work]
            )
            if results:
                conn.execute(
                    _SUPERSEDE,
                    {
                        "event_id_array": [event_id for event_id, *_ in work],
                        "received_at_array": [received_at for _, received_at, *_ in work],
                        "superseded_by_array": [result.event_id for result in results],
                    },
                )
        for result in results:
            summary.statuses[result.status.value] += 1
