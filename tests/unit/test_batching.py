"""The webhook writer's group commit: a lone event goes at once, events that keep coming share a batch.

The database side of ``record_many`` is covered against PostgreSQL in the integration tests; here a
recording stand-in for the pipeline shows only how the writer forms its batches in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, cast

from saleshub.process.pipeline import InboundEvent, IngestPipeline, IngestResult, ProcessedEvent, Status
from saleshub.receive.batching import BatchWriter


class _RecordingPipeline:
    """Accepts every event and remembers the size of each transaction."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.engine = self

    @contextlib.contextmanager
    def begin(self) -> Iterator[None]:
        yield None

    def record_many(self, conn: object, items: Sequence[tuple[Any, ...]]) -> list[IngestResult]:
        self.batches.append(len(items))
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


def _writer(linger: float) -> tuple[BatchWriter, _RecordingPipeline]:
    pipeline = _RecordingPipeline()
    writer = BatchWriter(cast(IngestPipeline, pipeline), linger=linger)
    writer.start()
    return writer, pipeline


def test_a_lone_event_after_a_quiet_spell_is_written_at_once() -> None:
    writer, pipeline = _writer(linger=0.4)
    try:
        time.sleep(0.5)  # quiet for longer than the linger
        [waited] = asyncio.run(_submit_spaced(writer, 1, 0))
    finally:
        writer.stop()
    assert pipeline.batches == [1]
    assert waited < 0.2  # not held back for the linger


def test_events_that_keep_coming_share_one_transaction() -> None:
    writer, pipeline = _writer(linger=0.5)
    try:
        time.sleep(0.6)
        asyncio.run(_submit_spaced(writer, 1, 0))  # after a quiet spell: written alone
        time.sleep(0.6)
        # Eight events 20 ms apart: from the second on, each comes within the linger of the last
        # write, so the writer waits for the rest instead of committing them one by one.
        asyncio.run(_submit_spaced(writer, 8, 0.02))
    finally:
        writer.stop()
    assert pipeline.batches[0] == 1
    assert len(pipeline.batches) <= 3, pipeline.batches
    assert sum(pipeline.batches) == 9


def test_without_linger_each_spaced_event_is_its_own_transaction() -> None:
    writer, pipeline = _writer(linger=0.0)
    try:
        asyncio.run(_submit_spaced(writer, 5, 0.02))
    finally:
        writer.stop()
    assert pipeline.batches == [1, 1, 1, 1, 1]
