"""The telemetry port: traces and metrics of every stage, with no backend tied into the stages.

Every stage of the flow calls the runtime's one ``Telemetry`` instance:

* ``with telemetry.span("receive", system="pyxis"):`` around a unit of work of a stage;
* ``telemetry.count("webhook.rejected", 1, status="401")``, ``gauge(…)``, ``timing(…)`` for metrics.

Stage names are ``STAGES``: ``receive``, ``record``, ``process`` (decode and map), ``store``,
``publish``. The default, ``NoTelemetry``, does nothing and costs a method call; a Datadog backend
(``settings.telemetry.mode = "datadog"``) will implement the same class, so no stage changes when it
plugs in. Tags are low-cardinality words (system, status, topic), never personal data or secrets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Final

from typing_extensions import override

from saleshub.errors import ConfigurationError
from saleshub.platform.settings import Settings

__all__ = ["STAGES", "NoTelemetry", "RecordingTelemetry", "Tag", "Telemetry", "telemetry_from_settings"]

STAGES: Final = ("receive", "record", "process", "store", "publish")

Tag = str | int | float | bool


class Telemetry(ABC):
    """What a stage may report: spans around work, counters, gauges and timings."""

    @abstractmethod
    def span(self, stage: str, **tags: Tag) -> AbstractContextManager[None]:
        """A context manager timing one unit of ``stage``'s work (an error inside marks it failed)."""

    @abstractmethod
    def count(self, metric: str, value: int = 1, **tags: Tag) -> None:
        """Add ``value`` to the counter ``metric``."""

    @abstractmethod
    def gauge(self, metric: str, value: float, **tags: Tag) -> None:
        """Set the gauge ``metric`` (a level: queue depth, outbox backlog) to ``value``."""

    @abstractmethod
    def timing(self, metric: str, seconds: float, **tags: Tag) -> None:
        """Record one duration of ``metric``, in seconds."""


class NoTelemetry(Telemetry):
    """The default: reports nothing."""

    @override
    def span(self, stage: str, **tags: Tag) -> AbstractContextManager[None]:
        return nullcontext()

    @override
    def count(self, metric: str, value: int = 1, **tags: Tag) -> None:
        return None

    @override
    def gauge(self, metric: str, value: float, **tags: Tag) -> None:
        return None

    @override
    def timing(self, metric: str, seconds: float, **tags: Tag) -> None:
        return None


class RecordingTelemetry(Telemetry):
    """Keeps what it is told in lists, for tests of the stages' reporting."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, dict[str, Tag], bool]] = []  # stage, tags, failed
        self.metrics: list[tuple[str, str, float, dict[str, Tag]]] = []  # kind, metric, value, tags

    @override
    @contextmanager
    def span(self, stage: str, **tags: Tag) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.spans.append((stage, tags, True))
            raise
        self.spans.append((stage, tags, False))

    @override
    def count(self, metric: str, value: int = 1, **tags: Tag) -> None:
        self.metrics.append(("count", metric, value, tags))

    @override
    def gauge(self, metric: str, value: float, **tags: Tag) -> None:
        self.metrics.append(("gauge", metric, value, tags))

    @override
    def timing(self, metric: str, seconds: float, **tags: Tag) -> None:
        self.metrics.append(("timing", metric, seconds, tags))


def telemetry_from_settings(settings: Settings) -> Telemetry:
    """The backend the settings choose (``off`` → ``NoTelemetry``)."""
    if settings.telemetry.mode == "off":
        return NoTelemetry()
    raise ConfigurationError(
        f"SALESHUB_TELEMETRY__MODE={settings.telemetry.mode} is not available in this version; use off"
    )
