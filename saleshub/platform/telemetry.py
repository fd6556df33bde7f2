"""The telemetry port: traces and metrics of every stage, with no backend tied into the stages.

Every stage of the flow calls the runtime's one ``Telemetry`` instance:

* ``with telemetry.span("receive", system="pyxis") as span:`` around a unit of work of a stage (the
  span is the active one inside, so library spans, SQL or HTTP, become its children);
* ``span = telemetry.start_span("process", parent=carrier, system="pyxis")`` … ``span.finish()``
  for a span that is not made active (several open at once: one per event of a batch);
* ``span.context()`` is the span's propagation carrier (a ``dict[str, str]`` of trace headers), to
  store with an event (its ``headers`` JSONB, key ``trace``) or send in Kafka record headers; a
  later stage continues the trace with ``parent=carrier``;
* ``telemetry.count(…)``, ``gauge(…)``, ``timing(…)`` for metrics (names: ``saleshub.platform.metrics``);
* ``telemetry.log_context()``: the active span's ``dd.trace_id``/``dd.span_id`` for log lines.

Stage names are ``STAGES``: ``receive``, ``record``, ``process`` (decode and map), ``store``,
``publish``, ``reconcile``; a batch's own span (what its SQL hangs under) is ``<stage>_batch``. The
default, ``NoTelemetry``, does nothing; ``enabled`` is false so a stage can skip building per-event
tags altogether. The Datadog backend (``settings.telemetry.mode = "datadog"``,
``saleshub.platform.datadog``) is imported only when chosen. Tags are low-cardinality words (system,
transport, status, channel, country, mapping revision), never personal data or secrets; the tag
name ``parent`` is reserved.
"""

from __future__ import annotations

import functools
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import ClassVar, Final

from typing_extensions import override

from saleshub.platform.settings import Settings, TelemetrySettings

__all__ = [
    "NO_SPAN",
    "STAGES",
    "Carrier",
    "NoTelemetry",
    "RecordedSpan",
    "RecordingTelemetry",
    "Span",
    "Tag",
    "Telemetry",
    "telemetry_from_settings",
]

STAGES: Final = ("receive", "record", "process", "store", "publish", "reconcile")

Tag = str | int | float | bool
#: Trace propagation headers (``x-datadog-trace-id``, ``traceparent`` …), as stored and sent.
Carrier = dict[str, str]


class Span(ABC):
    """One open span: tags can be added until it is finished."""

    @abstractmethod
    def set_tags(self, **tags: Tag) -> None:
        """Add or replace tags."""

    @abstractmethod
    def set_error(self, exc: BaseException) -> None:
        """Mark the span failed by ``exc`` (its type and masked message)."""

    @abstractmethod
    def set_failed(self, error_type: str, message: str) -> None:
        """Mark the span failed without an exception: an event quarantined, refused or failed.

        ``message`` is a fixed text of the hub (status and stage), never a value of the event.
        """

    @abstractmethod
    def context(self) -> Carrier:
        """The propagation carrier of this span (empty when nothing is traced)."""

    @abstractmethod
    def finish(self) -> None:
        """End the span (once)."""


class _NoSpan(Span):
    @override
    def set_tags(self, **tags: Tag) -> None:
        return None

    @override
    def set_error(self, exc: BaseException) -> None:
        return None

    @override
    def set_failed(self, error_type: str, message: str) -> None:
        return None

    @override
    def context(self) -> Carrier:
        return {}

    @override
    def finish(self) -> None:
        return None


#: The span of ``NoTelemetry``: accepts everything, keeps nothing.
NO_SPAN: Final[Span] = _NoSpan()


class Telemetry(ABC):
    """What a stage may report: spans around work, counters, gauges and timings."""

    #: False for a backend that reports nothing: a stage may skip preparing per-event tags.
    enabled: ClassVar[bool] = True

    @abstractmethod
    def span(
        self, stage: str, *, parent: Mapping[str, str] | None = None, **tags: Tag
    ) -> AbstractContextManager[Span]:
        """An active span around one unit of ``stage``'s work (an error inside marks it failed).

        Without ``parent`` it is a child of the active span, if any; with one, it continues that
        carrier's trace.
        """

    @abstractmethod
    def start_span(self, stage: str, *, parent: Mapping[str, str] | None = None, **tags: Tag) -> Span:
        """A span that is not made active; the caller finishes it."""

    @abstractmethod
    def count(self, metric: str, value: int = 1, **tags: Tag) -> None:
        """Add ``value`` to the counter ``metric``."""

    @abstractmethod
    def gauge(self, metric: str, value: float, **tags: Tag) -> None:
        """Set the gauge ``metric`` (a level: queue depth, outbox backlog) to ``value``."""

    @abstractmethod
    def timing(self, metric: str, seconds: float, **tags: Tag) -> None:
        """Record one duration of ``metric``, in seconds (a distribution)."""

    def log_context(self) -> Mapping[str, str]:
        """Fields that tie a log line to the active span (``dd.trace_id`` …); empty by default."""
        return {}

    def close(self) -> None:  # noqa: B027 - an optional hook, nothing to do by default
        """Send what is buffered (called when the process stops)."""


class NoTelemetry(Telemetry):
    """The default: reports nothing."""

    enabled: ClassVar[bool] = False

    @override
    def span(
        self, stage: str, *, parent: Mapping[str, str] | None = None, **tags: Tag
    ) -> AbstractContextManager[Span]:
        return nullcontext(NO_SPAN)

    @override
    def start_span(self, stage: str, *, parent: Mapping[str, str] | None = None, **tags: Tag) -> Span:
        return NO_SPAN

    @override
    def count(self, metric: str, value: int = 1, **tags: Tag) -> None:
        return None

    @override
    def gauge(self, metric: str, value: float, **tags: Tag) -> None:
        return None

    @override
    def timing(self, metric: str, seconds: float, **tags: Tag) -> None:
        return None


_RECORDING_HEADER = "x-recording-span"


@dataclass
class RecordedSpan(Span):
    """A span of ``RecordingTelemetry``: its stage, tags, parent span id and outcome."""

    owner: RecordingTelemetry = field(repr=False)
    stage: str
    tags: dict[str, Tag]
    span_id: int
    parent_id: int | None
    failed: bool = False
    finished: bool = False
    started: float = field(default_factory=time.monotonic)

    @override
    def set_tags(self, **tags: Tag) -> None:
        self.tags.update(tags)

    @override
    def set_error(self, exc: BaseException) -> None:
        self.failed = True
        self.tags["error.type"] = type(exc).__name__

    @override
    def set_failed(self, error_type: str, message: str) -> None:
        self.failed = True
        self.tags["error.type"] = error_type
        self.tags["error.message"] = message

    @override
    def context(self) -> Carrier:
        return {_RECORDING_HEADER: str(self.span_id)}

    @override
    def finish(self) -> None:
        if not self.finished:
            self.finished = True
            self.owner.spans.append(self)


class RecordingTelemetry(Telemetry):
    """Keeps what it is told in lists, for tests of the stages' reporting.

    ``spans`` holds finished spans in the order they finished; ``metrics`` holds
    ``(kind, metric, value, tags)``. A span's ``context()`` carries its id, so a test can follow
    a trace across a stored or sent carrier (``parent_id``).
    """

    def __init__(self) -> None:
        self.spans: list[RecordedSpan] = []
        self.metrics: list[tuple[str, str, float, dict[str, Tag]]] = []
        self._ids = itertools.count(1)
        self._active: list[RecordedSpan] = []

    def _new(self, stage: str, parent: Mapping[str, str] | None, tags: dict[str, Tag]) -> RecordedSpan:
        if parent is not None and _RECORDING_HEADER in parent:
            parent_id: int | None = int(parent[_RECORDING_HEADER])
        else:
            parent_id = self._active[-1].span_id if self._active and parent is None else None
        return RecordedSpan(self, stage, tags, next(self._ids), parent_id)

    @override
    @contextmanager
    def span(self, stage: str, *, parent: Mapping[str, str] | None = None, **tags: Tag) -> Iterator[Span]:
        recorded = self._new(stage, parent, tags)
        self._active.append(recorded)
        try:
            yield recorded
        except BaseException as exc:
            recorded.set_error(exc)
            raise
        finally:
            self._active.remove(recorded)
            recorded.finish()

    @override
    def start_span(self, stage: str, *, parent: Mapping[str, str] | None = None, **tags: Tag) -> Span:
        return self._new(stage, parent, tags)

    @override
    def count(self, metric: str, value: int = 1, **tags: Tag) -> None:
        self.metrics.append(("count", metric, value, tags))

    @override
    def gauge(self, metric: str, value: float, **tags: Tag) -> None:
        self.metrics.append(("gauge", metric, value, tags))

    @override
    def timing(self, metric: str, seconds: float, **tags: Tag) -> None:
        self.metrics.append(("timing", metric, seconds, tags))


@functools.cache
def _datadog(settings: TelemetrySettings) -> Telemetry:
    # Imported here, only when chosen: with mode "off" nothing of ddtrace is ever imported.
    from saleshub.platform.datadog import DatadogTelemetry

    return DatadogTelemetry(settings)


def telemetry_from_settings(settings: Settings) -> Telemetry:
    """The backend the settings choose (``off`` → ``NoTelemetry``); one Datadog backend per process."""
    if settings.telemetry.mode == "datadog":
        return _datadog(settings.telemetry)
    return NoTelemetry()
