"""Group commit for the webhook path: one writer thread records queued events a batch at a time.

Webhook handlers check, decode and classify on the event loop (``saleshub.receive.intake``), then
hand the admitted event to the ``GroupCommit`` and await its receipt. The writer thread drains
whatever is queued (up to ``max_batch``), records it with ``Recorder.record_many`` in **one**
transaction (a few set-based statements), and resolves every waiting handler only after that
commit. Under load many events share one commit; when idle, a lone event is written at once.

If a batch fails for a reason other than the database being down, its events are recorded one by
one, so one bad event cannot fail its neighbours. When the database is down, every waiting handler
gets ``RetriableError`` (the webhook answers 503 and nothing was written).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass

from saleshub.errors import RetriableError
from saleshub.receive.intake import Admission, InboundEvent
from saleshub.receive.recorder import Receipt, Recorder

__all__ = ["GroupCommit"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Item:
    event: InboundEvent
    admission: Admission
    future: asyncio.Future[Receipt]
    loop: asyncio.AbstractEventLoop


def _resolve(outcomes: list[tuple[_Item, Receipt | BaseException]]) -> None:
    """Settle the callers' futures, with one wake-up of each event loop for the whole batch."""

    def settle(pairs: list[tuple[_Item, Receipt | BaseException]]) -> None:
        for item, result in pairs:
            if item.future.done():  # the caller went away (client disconnected); the write stands
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item, Receipt | BaseException]]] = {}
    for item, result in outcomes:
        by_loop.setdefault(item.loop, []).append((item, result))
    for loop, pairs in by_loop.items():
        # Each call_soon_threadsafe writes to the loop's wake-up pipe: once per batch, not per event.
        loop.call_soon_threadsafe(settle, pairs)


class GroupCommit:
    """A writer thread that records events for async callers, one transaction per batch."""

    def __init__(self, recorder: Recorder, max_batch: int = 128) -> None:
        self.recorder, self.max_batch = recorder, max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="saleshub-recorder", daemon=True)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    async def submit(self, event: InboundEvent, admission: Admission) -> Receipt:
        """Record ``event``; returns after its transaction committed (or raises ``RetriableError``)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Receipt] = loop.create_future()
        self._queue.put(_Item(event, admission, future, loop))
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
            receipts = self.recorder.record_batch([(item.event, item.admission) for item in batch])
        except RetriableError as exc:
            _resolve([(item, exc) for item in batch])
            return
        except Exception as exc:  # every waiting caller must hear of it
            if len(batch) > 1:
                log.warning("a batch of %d events failed (%s); recording them one by one", len(batch), exc)
                for item in batch:
                    self._write([item])
                return
            log.exception("recording a %s event failed", batch[0].event.system)
            _resolve([(batch[0], exc)])
            return
        _resolve(list(zip(batch, receipts, strict=True)))
