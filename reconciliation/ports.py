"""What reconciliation needs of the hub's receiving side, as ports the composition root fills.

Reconciliation reads a source's API and, when healing, records what it read; both belong to the
receiving side (``saleshub.receive``: the pollers' HTTP client, intake and the recorder), which
reconciliation does not import. The commands and ``saleshub serve`` pass in the implementations
(``saleshub.receive.polling.sources``); tests may pass their own.

* ``RecordSource``: a source's API opened for reading (the pollers' ``SourceClient`` is one);
* ``PolledRecorder``: records a source's records as polled events, through the hub's one record
  path, and says for each whether intake refused it or the hub held it already.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from adapters.base import SourceAdapter
from adapters.source import SourceRecord, Window

__all__ = ["PolledRecorder", "RecordSource", "Recorded"]


class RecordSource(Protocol):
    """A source's API open for reading: every record changed in a window."""

    def records(self, window: Window) -> Iterator[SourceRecord]:
        """The records changed in ``[window.since, window.until)``, page after page."""
        ...


class Recorded(Protocol):
    """What recording one record did."""

    @property
    def refused(self) -> bool:
        """Whether intake refused the body."""
        ...

    @property
    def repeated(self) -> bool:
        """Whether the hub held the event already (nothing was written)."""
        ...


class PolledRecorder(Protocol):
    """Records a source's records as polled events (transport ``poll``), as a poller would."""

    def __call__(
        self, adapter: SourceAdapter, records: Sequence[SourceRecord], headers: Mapping[str, str]
    ) -> Sequence[Recorded]:
        """Record ``records`` of ``adapter``'s system with ``headers``; what each did, in order."""
        ...
