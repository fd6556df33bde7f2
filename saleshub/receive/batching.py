"""Group commit for the webhook path: one writer thread records queued events a batch at a time.

Webhook handlers decode and map on the event loop, then hand the processed event to the
``BatchWriter`` and await its result. The writer drains whatever is queued (up to ``max_batch``),
writes it with ``IngestPipeline.record_many`` in **one** transaction (a few set-based statements),
and resolves every waiting handler only after that commit. Under load, many events share one
commit and one set of round trips; when idle, a lone event is written at once. The writer never
waits for a batch to fill: a linger was measured and its effect lay within this machine's noise.

If a batch fails for a reason other than the database being down, its events are retried one by
one, so one bad event cannot fail its neighbours. When the database is down, every waiting handler
gets ``RetriableError`` (the webhook answers 503 and nothing was written).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass

from saleshub.process.pipeline import InboundEvent, IngestPipeline, IngestResult, ProcessedEvent
from saleshub.store.failures import as_retriable

__all__ = ["BatchWriter"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Item:
    event: InboundEvent
    processed: ProcessedEvent
    started: float
    future: asyncio.Future[IngestResult]
    loop: asyncio.AbstractEventLoop


def _resolve(outcomes: list[tuple[_Item, IngestResult | BaseException]]) -> None:
    """Settle the callers' futures, with one wake-up of each event loop for the whole batch."""

    def settle(pairs: list[tuple[_Item, IngestResult | BaseException]]) -> None:
        for item, result in pairs:
            if item.future.done():  # the caller went away (client disconnected); the write stands
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item, IngestResult | BaseException]]] = {}
    for item, result in outcomes:
        by_loop.setdefault(item.loop, []).append((item, result))
    for loop, pairs in by_loop.items():
        # Each call_soon_threadsafe writes to the loop's wake-up pipe: once per batch, not per event.
        loop.call_soon_threadsafe(settle, pairs)


class BatchWriter:
    """A writer thread that records events for async callers, one transaction per batch."""

    def __init__(self, pipeline: IngestPipeline, max_batch: int = 128) -> None:
        self.pipeline, self.max_batch = pipeline, max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="saleshub-writer", daemon=True)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    async def submit(self, event: InboundEvent, processed: ProcessedEvent, started: float) -> IngestResult:
        """Record ``event``; returns after its transaction committed (or raises ``RetriableError``)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._queue.put(_Item(event, processed, started, future, loop))
        return await future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)
            if stopping:
                return

    def _write(self, batch: list[_Item]) -> None:
        try:
            with self.pipeline.engine.begin() as conn:
                results = self.pipeline.record_many(
                    conn, [(item.event, item.processed, item.started) for item in batch]
                )
        except Exception as exc:  # every waiting caller must hear of it; the cause decides how
            retriable = as_retriable(exc)
            if retriable is None and len(batch) > 1:
                log.warning("a batch of %d events failed (%s); writing them one by one", len(batch), exc)
                for item in batch:
                    self._write([item])
                return
            if retriable is None:
                log.exception("recording a %s event failed", batch[0].event.system)
            error: BaseException = retriable or exc
            _resolve([(item, error) for item in batch])
            return
        _resolve(list(zip(batch, results, strict=True)))
