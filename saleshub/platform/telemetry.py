"""The telemetry port: every stage reports its spans and metrics here; the default does nothing.

Stages call ``telemetry.span(stage, **tags)`` around their work and ``telemetry.count(metric, n,
**tags)`` for what they counted, so a tracing and metrics backend (Datadog) plugs in without
touching the stages. ``NoTelemetry`` costs a function call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from typing_extensions import override

__all__ = ["NoTelemetry", "Telemetry"]


class Telemetry(ABC):
    """Where stages report spans and metrics."""

    @abstractmethod
    def span(self, stage: str, **tags: str | int) -> AbstractContextManager[None]:
        """A span around one stage's work (receive, record, process, store, publish, reconcile)."""

    @abstractmethod
    def count(self, metric: str, value: int = 1, **tags: str) -> None:
        """Add ``value`` to a counter."""


class NoTelemetry(Telemetry):
    """Telemetry off: spans and metrics go nowhere."""

    @override
    def span(self, stage: str, **tags: str | int) -> AbstractContextManager[None]:
        return _nothing()

    @override
    def count(self, metric: str, value: int = 1, **tags: str) -> None:
        return None


@contextmanager
def _nothing() -> Iterator[None]:
    yield
