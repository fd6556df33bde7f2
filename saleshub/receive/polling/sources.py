"""The receiving side's implementations of reconciliation's ports (``reconciliation.ports``).

``RecorderPolled`` records a source's records through the hub's recorder, built as a poller builds
them (``saleshub.receive.polling.loop.polled_items``), so a record healed by reconciliation has the
idempotency key the poller gives it;
``open_source`` is the pollers' ``SourceClient`` of a system as ``pollers.systems`` configures it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from adapters.base import SourceAdapter
from adapters.source import SourceRecord
from saleshub.receive.polling.http import SourceClient
from saleshub.receive.polling.loop import polled_items
from saleshub.receive.polling.scheduler import PollingHub, build_poller
from saleshub.receive.recorder import Receipt, Recorder

__all__ = ["RecorderPolled", "open_source"]


class RecorderPolled:
    """Records a source's records as polled events with the hub's recorder (a ``PolledRecorder``)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def __call__(
        self, adapter: SourceAdapter, records: Sequence[SourceRecord], headers: Mapping[str, str]
    ) -> list[Receipt]:
        """Record ``records`` in one batch; each one's receipt."""
        return self.recorder.record_batch(polled_items(adapter, records, headers))


def open_source(hub: PollingHub, system: str) -> tuple[SourceAdapter, Callable[[], SourceClient]]:
    """``system``'s adapter and the opener of its pollers' client (``ConfigurationError`` if not polled)."""
    poller = build_poller(hub, system)
    return poller.adapter, poller.client
