"""Replay: stored events taken in again, so the processor maps them through the current mappings.

A replay is a new integration event (transport ``replay``) whose ``replay_of`` names the original
(always the first event, also when a replay is replayed again) and whose raw body is not copied: it
stays with the original. It is recorded like any inbound event (``accepted`` and queued) and the
original gets ``superseded_by`` in the same transaction, so "all open quarantined events" shrinks
as problems are fixed, while the original's own status and errors stay as they were for the audit.

``Replayer.replay`` records the selected events in batches, then lets a processor work the queue
and waits until every replay has its final status, which the summary counts. A database failure
leaves the batch's originals un-superseded; the same command can simply be run again.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from adapters.base import SourceAdapter
from saleshub.process.processor import Processor
from saleshub.receive.intake import InboundEvent, admit
from saleshub.receive.recorder import Recorder
from saleshub.store import events as store
from saleshub.store.events import Status
from saleshub.store.failures import database_errors

__all__ = ["ReplaySelection", "ReplaySummary", "Replayer", "select_events"]


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


def select_events(engine: Engine, selection: ReplaySelection) -> list[tuple[uuid.UUID, datetime]]:
    """The ``(event_id, received_at)`` keys of the selected events, oldest first."""
    with database_errors(), engine.connect() as conn:
        return store.select_event_keys(
            conn,
            event_id=selection.event_id,
            system=selection.system,
            since=selection.since,
            until=selection.until,
            open_only=selection.open_only,
            limit=selection.limit,
        )


def _chunks(
    items: Sequence[tuple[uuid.UUID, datetime]], size: int
) -> Iterator[Sequence[tuple[uuid.UUID, datetime]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Replayer:
    """Records replays of stored events and waits for the processor to map them."""

    def __init__(
        self,
        recorder: Recorder,
        adapters: Mapping[str, SourceAdapter],
        processor: Processor,
        batch_size: int = 500,
        wait_seconds: float = 300.0,
    ) -> None:
        self.recorder, self.adapters, self.processor = recorder, dict(adapters), processor
        self.engine = recorder.engine
        self.batch_size, self.wait_seconds = batch_size, wait_seconds

    def replay(
        self, keys: Sequence[tuple[uuid.UUID, datetime]], progress: Callable[[int], None] | None = None
    ) -> ReplaySummary:
        """Replay the events with these keys; ``progress`` is called with each batch's size."""
        summary = ReplaySummary(selected=len(keys))
        started = time.perf_counter()
        for batch in _chunks(keys, self.batch_size):
            replays = self._record_batch(batch, summary)
            for status in self._wait_for(replays):
                summary.statuses[status.value] += 1
            if progress is not None:
                progress(len(batch))
        summary.seconds = time.perf_counter() - started
        return summary

    def _record_batch(
        self, batch: Sequence[tuple[uuid.UUID, datetime]], summary: ReplaySummary
    ) -> list[uuid.UUID]:
        with database_errors(), self.engine.connect() as conn:
            stored = store.stored_events(conn, batch)
        items, originals = [], []
        for row in stored:
            adapter = self.adapters.get(row.system)
            if row.body is None or adapter is None:
                summary.missing_body += 1
                continue
            root = row.replay_of or row.event_id
            event = InboundEvent(
                system=row.system,
                transport="replay",
                body=row.body,
                content_type=row.content_type,
                idempotency_key=f"replay:{root}:{uuid.uuid4()}",
                replay_of=root,
            )
            items.append((event, admit(event, adapter)))
            originals.append(row)
        if not items:
            return []
        with database_errors(), self.engine.begin() as conn:
            receipts = self.recorder.record_many(conn, items)
            store.supersede(
                conn,
                [
                    (row.event_id, row.received_at, receipt.event_id)
                    for row, receipt in zip(originals, receipts, strict=True)
                ],
            )
        self.recorder.count(items, receipts)
        return [receipt.event_id for receipt in receipts]

    def _wait_for(self, event_ids: list[uuid.UUID]) -> list[Status]:
        """Process the queue until these events have their final status (another processor may help)."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            self.processor.drain(timeout=max(1.0, deadline - time.monotonic()))
            with database_errors(), self.engine.connect() as conn:
                outcomes = store.event_outcomes(conn, event_ids)
            statuses = [outcomes[event_id].status for event_id in event_ids if event_id in outcomes]
            if Status.ACCEPTED not in statuses or time.monotonic() > deadline:
                return statuses
            time.sleep(0.2)  # lanes held by another processor: it finishes them shortly
