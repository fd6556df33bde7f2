"""The webhook writer's group commit: a lone event goes at once, events queued meanwhile share a batch.

The database side of ``record_many`` is covered against PostgreSQL in the integration tests; here a
recording stand-in for the pipeline shows only how the writer forms its batches in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, cast

from saleshub.process.pipeline import InboundEvent, IngestPipeline, IngestResult, ProcessedEvent, Status
from saleshub.receive.batching import BatchWriter


class _RecordingPipeline:
    """Accepts every event and remembers the size of each transaction."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[int] = []
        self.engine = self
        self.gate = gate  # the first transaction waits for it

    @contextlib.contextmanager
    def begin(self) -> Iterator[None]:
        yield None

    def record_many(self, conn: object, items: Sequence[tuple[Any, ...]]) -> list[IngestResult]:
        self.batches.append(len(items))
        if self.gate is not None and len(self.batches) == 1:
            self.gate.wait(5)
        return [IngestResult(uuid.uuid4(), Status.MAPPED) for _ in items]


def _event() -> InboundEvent:
    return InboundEvent("pyxis", "webhook", b"{}", "application/json")


async def _submit_spaced(writer: BatchWriter, count: int, gap: float) -> list[float]:
    async def one(delay: float) -> float:
        await asyncio.sleep(delay)
        started = time.perf_counter()
        await writer.submit(_event(), ProcessedEvent(), started)
        return time.perf_counter() - started

    return list(await asyncio.gather(*(one(n * gap) for n in range(count))))


def _writer(gate: threading.Event | None = None) -> tuple[BatchWriter, _RecordingPipeline]:
    pipeline = _RecordingPipeline(gate)
    writer = BatchWriter(cast(IngestPipeline, pipeline))
    writer.start()
    return writer, pipeline


def test_a_lone_event_is_written_at_once() -> None:
    writer, pipeline = _writer()
    try:
        [waited] = asyncio.run(_submit_spaced(writer, 1, 0))
    finally:
        writer.stop()
    assert pipeline.batches == [1]
    assert waited < 0.2


def test_events_queued_while_a_batch_is_written_share_the_next_transaction() -> None:
    gate = threading.Event()
    writer, pipeline = _writer(gate)
    try:
        # The first event's transaction is held open until the other seven are queued behind it.
        threading.Timer(0.3, gate.set).start()
        asyncio.run(_submit_spaced(writer, 8, 0.02))
    finally:
        writer.stop()
    assert pipeline.batches == [1, 7]


def test_spaced_events_are_not_held_back_to_fill_a_batch() -> None:
    writer, pipeline = _writer()
    try:
        asyncio.run(_submit_spaced(writer, 5, 0.02))
    finally:
        writer.stop()
    assert pipeline.batches == [1, 1, 1, 1, 1]
