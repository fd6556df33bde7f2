"""The webhook path's group commit: concurrent events share one transaction, spaced ones go alone.

The database side of recording is covered against PostgreSQL in the integration tests; here a
stand-in recorder shows only how the writer thread forms its batches and settles its callers.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Sequence
from typing import cast

import pytest

from saleshub.errors import RetriableError
from saleshub.receive.batching import GroupCommit
from saleshub.receive.intake import Admission, InboundEvent
from saleshub.receive.recorder import Receipt, Recorder
from saleshub.store.events import Status


class _StandInRecorder:
    """Accepts every event and remembers the size of each transaction; can be made slow or down."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.down = False

    def record_batch(self, items: Sequence[tuple[InboundEvent, Admission]]) -> list[Receipt]:
        self.gate.wait(5)
        if self.down:
            raise RetriableError("the database is unavailable: stand-in")
        self.batches.append(len(items))
        return [Receipt(uuid.uuid4(), Status.ACCEPTED) for _ in items]


def _event() -> InboundEvent:
    return InboundEvent("pyxis", "webhook", b"{}", "application/json")


async def _submit(writer: GroupCommit, count: int, gap: float) -> list[Receipt]:
    async def one(delay: float) -> Receipt:
        await asyncio.sleep(delay)
        return await writer.submit(_event(), Admission())

    return list(await asyncio.gather(*(one(n * gap) for n in range(count))))


def _writer() -> tuple[GroupCommit, _StandInRecorder]:
    recorder = _StandInRecorder()
    writer = GroupCommit(cast(Recorder, recorder))
    writer.start()
    return writer, recorder


def test_each_spaced_event_is_its_own_transaction() -> None:
    writer, recorder = _writer()
    try:
        receipts = asyncio.run(_submit(writer, 5, 0.05))
    finally:
        writer.stop()
    assert recorder.batches == [1, 1, 1, 1, 1]
    assert len({receipt.event_id for receipt in receipts}) == 5


def test_events_waiting_behind_a_commit_share_the_next_one() -> None:
    writer, recorder = _writer()
    recorder.gate.clear()  # the first commit is slow: the others queue behind it

    async def scenario() -> list[Receipt]:
        first = asyncio.ensure_future(writer.submit(_event(), Admission()))
        await asyncio.sleep(0.1)
        rest = [asyncio.ensure_future(writer.submit(_event(), Admission())) for _ in range(9)]
        await asyncio.sleep(0.1)
        recorder.gate.set()
        return [await first, *[await one for one in rest]]

    try:
        receipts = asyncio.run(scenario())
    finally:
        writer.stop()
    assert recorder.batches == [1, 9]
    assert all(receipt.status is Status.ACCEPTED for receipt in receipts)


def test_a_database_outage_reaches_every_waiting_caller() -> None:
    writer, recorder = _writer()
    recorder.down = True
    try:
        with pytest.raises(RetriableError):
            asyncio.run(_submit(writer, 3, 0))
    finally:
        writer.stop()
    assert recorder.batches == []
