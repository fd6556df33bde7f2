"""The Datadog backend of the telemetry port: ddtrace spans, DogStatsD metrics, log correlation.

Imported only when ``SALESHUB_TELEMETRY__MODE=datadog`` (``telemetry_from_settings``), once per
process. Building it:

1. sets ``DD_SERVICE``, ``DD_ENV``, ``DD_VERSION`` and ``DD_TRACE_AGENT_URL`` from the
   ``telemetry`` settings where the environment does not set them already (ddtrace and the
   DogStatsD client read their configuration from these variables only, so this is the one place
   the hub writes its environment; an operator's ``DD_*`` variables win: unified service tagging);
2. imports ddtrace and instruments the web app (FastAPI), httpx, psycopg (every SQL
   statement, SQLAlchemy's included) and confluent-kafka;
3. installs two trace filters: one drops a trace that is a lone database statement (the idle
   polls, leases and heartbeats of the background threads: no request or stage span around it),
   the other masks personal data (``saleshub.platform.masking``) in every
   string tag and resource of every span before it leaves the process, the library spans' error
   messages and stacks included;
4. opens a DogStatsD client (``telemetry.statsd_host``/``statsd_port``, buffered, no client
   self-telemetry) whose every metric carries the unified service tags.

A stage span is named ``saleshub.<stage>`` with the resource ``<stage> <system>``; its tags are
strings. Propagation uses ddtrace's HTTP propagator, the same carrier in an event's ``headers`` JSONB
and in Kafka record headers: Datadog's ``x-datadog-*`` headers are written (set
``DD_TRACE_PROPAGATION_STYLE_INJECT=datadog,tracecontext`` for W3C ``traceparent`` too), both kinds
are read.

Without an agent nothing changes for the hub: spans and metrics are dropped, and the ddtrace and
DogStatsD clients' lines are throttled by the log handler (``saleshub.platform.logs``: one warning
per logger every ten minutes), after one warning at start when no agent answers: an absent agent is
said, not shouted.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from typing_extensions import override

from saleshub.platform.masking import mask
from saleshub.platform.settings import TelemetrySettings
from saleshub.platform.telemetry import Carrier, Span, Tag, Telemetry

__all__ = ["INSTRUMENTED", "DatadogTelemetry"]

#: The libraries ddtrace instruments in the hub.
INSTRUMENTED = ("fastapi", "httpx", "psycopg", "kafka")

log = logging.getLogger(__name__)

#: ``mask`` of the trace filter, remembered: the same few SQL statements, resources and tag values
#: come back in every trace, and masking a SQL statement costs about 0.1 ms.
_mask_tag = functools.lru_cache(maxsize=8192)(mask)


def _package_version() -> str:
    try:
        return version("saleshub")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0"


def _export_settings(settings: TelemetrySettings) -> None:
    wanted = {
        "DD_SERVICE": settings.service,
        "DD_ENV": settings.env,
        "DD_VERSION": settings.version or _package_version(),
        "DD_TRACE_AGENT_URL": settings.agent_url,
        # ddtrace logs through the hub's handler (masked, JSON or text), not a handler of its own.
        "DD_TRACE_LOG_STREAM_HANDLER": "false",
        # A consumer's poll that returns no record is no work: not a trace every second per consumer.
        "DD_KAFKA_EMPTY_POLL_ENABLED": "false",
        # Carriers in Datadog's headers only: W3C trace context as well doubled the cost of every
        # carrier written (two per processed event). Extraction still reads both.
        "DD_TRACE_PROPAGATION_STYLE_INJECT": "datadog",
        # ddtrace's reports about itself to Datadog: a call per span and metric, no use to operators.
        "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
    }
    for variable, value in wanted.items():
        if value:
            os.environ.setdefault(variable, value)


def _agent_answers(url: str) -> bool:
    # The standard library's client: this probe runs before ddtrace instruments httpx, and logs nothing.
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/info", timeout=1.0) as response:
            return int(response.status) < 500
    except (urllib.error.URLError, OSError, ValueError):
        return False


class _DatadogSpan(Span):
    __slots__ = ("_span",)

    def __init__(self, span: Any) -> None:
        self._span = span

    @override
    def set_tags(self, **tags: Tag) -> None:
        for key, value in tags.items():
            self._span.set_tag(key, str(value))

    @override
    def set_error(self, exc: BaseException) -> None:
        self._span.error = 1
        self._span.set_tag("error.type", type(exc).__name__)
        self._span.set_tag("error.message", mask(_text(exc)))

    @override
    def set_failed(self, error_type: str, message: str) -> None:
        self._span.error = 1
        self._span.set_tag("error.type", error_type)
        self._span.set_tag("error.message", mask(message))

    @override
    def context(self) -> Carrier:
        from ddtrace.propagation.http import HTTPPropagator

        carrier: Carrier = {}
        HTTPPropagator.inject(self._span, carrier)
        return carrier

    @override
    def finish(self) -> None:
        self._span.finish()


def _text(exc: BaseException) -> str:
    try:
        return str(exc).splitlines()[0] if str(exc) else ""
    except Exception:  # a message that cannot even be formatted still names its type
        return type(exc).__name__


class DatadogTelemetry(Telemetry):
    """Spans to the Datadog agent through ddtrace, metrics through DogStatsD (see the module docstring)."""

    def __init__(self, settings: TelemetrySettings) -> None:
        _export_settings(settings)
        import ddtrace
        from datadog.dogstatsd.base import DogStatsd
        from ddtrace.propagation.http import HTTPPropagator
        from ddtrace.trace import TraceFilter, tracer

        ddtrace.patch(**dict.fromkeys(INSTRUMENTED, True))

        class DropBackgroundQueries(TraceFilter):
            """Drops a trace that is one database statement with no request or stage around it.

            The processors' idle polls, lane leases, heartbeats and vitals queries run every second
            or so in every process; as traces they were nearly all of them, and an agent's quota
            went to them instead of orders. SQL under a request or a stage span stays in its trace.
            """

            def process_trace(self, trace: list[Any]) -> list[Any] | None:
                for span in trace:
                    if not span.parent_id:  # the root: a statement, a commit or a rollback alone
                        alone = span.span_type == "sql" or span.get_tag("component") == "psycopg"
                        return None if alone else trace
                return trace

        class MaskPersonalData(TraceFilter):
            """Masks personal data in every string tag and resource before a trace is sent."""

            def process_trace(self, trace: list[Any]) -> list[Any]:
                for span in trace:
                    for key, value in span.get_tags().items():
                        masked = _mask_tag(value)
                        if masked != value:
                            span.set_tag(key, masked)
                    if span.resource:
                        span.resource = _mask_tag(span.resource)
                return trace

        tracer.configure(trace_processors=[DropBackgroundQueries(), MaskPersonalData()])
        agent = os.environ.get("DD_TRACE_AGENT_URL", "http://localhost:8126")
        if not _agent_answers(agent):
            log.warning("no Datadog agent answers at %s; spans and metrics are dropped until one does", agent)
        self._unified = {
            f"dd.{tag}": os.environ[f"DD_{tag.upper()}"]
            for tag in ("service", "env", "version")
            if os.environ.get(f"DD_{tag.upper()}")
        }
        self._tracer: Any = tracer
        self._propagator: Any = HTTPPropagator
        self._statsd = DogStatsd(
            host=settings.statsd_host,
            port=settings.statsd_port,
            disable_telemetry=True,
            disable_buffering=False,
        )

    def _parent(self, parent: Mapping[str, str] | None) -> Any:
        if not parent:
            return None
        context = self._propagator.extract(dict(parent))
        return context if context.trace_id else None

    def _open(
        self, stage: str, parent: Mapping[str, str] | None, tags: dict[str, Tag], activate: bool
    ) -> Any:
        system = tags.get("system")
        resource = f"{stage} {system}" if system is not None else stage
        context = self._parent(parent)
        if context is None and activate:
            span = self._tracer.trace(f"saleshub.{stage}", resource=resource)
        else:
            child_of = context if context is not None else self._tracer.current_span()
            span = self._tracer.start_span(
                f"saleshub.{stage}", child_of=child_of, resource=resource, activate=activate
            )
        for key, value in tags.items():
            span.set_tag(key, str(value))
        return span

    @override
    @contextmanager
    def span(self, stage: str, *, parent: Mapping[str, str] | None = None, **tags: Tag) -> Iterator[Span]:
        opened = _DatadogSpan(self._open(stage, parent, tags, activate=True))
        try:
            yield opened
        except BaseException as exc:
            opened.set_error(exc)
            raise
        finally:
            opened.finish()

    @override
    def start_span(self, stage: str, *, parent: Mapping[str, str] | None = None, **tags: Tag) -> Span:
        return _DatadogSpan(self._open(stage, parent, tags, activate=False))

    @staticmethod
    def _tags(tags: dict[str, Tag]) -> list[str]:
        return [f"{key}:{value}" for key, value in tags.items()]

    @override
    def count(self, metric: str, value: int = 1, **tags: Tag) -> None:
        self._statsd.increment(metric, value, tags=self._tags(tags))

    @override
    def gauge(self, metric: str, value: float, **tags: Tag) -> None:
        self._statsd.gauge(metric, value, tags=self._tags(tags))

    @override
    def timing(self, metric: str, seconds: float, **tags: Tag) -> None:
        self._statsd.distribution(metric, seconds, tags=self._tags(tags))

    @override
    def log_context(self) -> Mapping[str, str]:
        ids: dict[str, str] = self._tracer.get_log_correlation_context()
        if ids.get("dd.trace_id") in (None, "0"):
            return self._unified
        return {"dd.trace_id": ids["dd.trace_id"], "dd.span_id": ids["dd.span_id"], **self._unified}

    @override
    def close(self) -> None:
        self._statsd.flush()
        self._tracer.flush()
