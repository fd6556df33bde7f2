"""The hub's log lines: text or JSON (``SALESHUB_LOG_FORMAT``), personal data masked in both.

``configure_logging(settings)`` is called once at a command's entry (``serve``, ``process``,
``kafka relay|consume``, each web worker). It installs one handler on the root logger whose
formatter

* renders the record as usual (message, then the exception and its trace, if any);
* masks a customer's personal data in the whole result (``saleshub.platform.masking``), so neither
  a message, an argument, an exception's text nor a traceback line can carry a name, an e-mail
  address, a phone number or a street address into the log;
* with ``json``, writes one object per line with Datadog's standard attributes: ``timestamp``,
  ``status``, ``logger.name``, ``logger.thread_name``, ``message``, ``error.kind``,
  ``error.message``, ``error.stack``, and ``dd.trace_id``/``dd.span_id``/``dd.service``/
  ``dd.env``/``dd.version`` of the active span (from the telemetry port), which is what ties a
  log line to its trace in Datadog.

uvicorn's own loggers propagate to the root logger (``serve`` passes ``log_config=None``), so its
lines take the same format.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from typing_extensions import override

from saleshub.platform.masking import mask
from saleshub.platform.settings import Settings
from saleshub.platform.telemetry import telemetry_from_settings

__all__ = [
    "TEXT_FORMAT",
    "JsonFormatter",
    "MaskingFormatter",
    "StandardErrorHandler",
    "TelemetryClientThrottle",
    "configure_logging",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Loggers that say nothing an operator needs at INFO.
_CHATTY = ("pgserver", "alembic.runtime.migration", "ddtrace", "datadog.dogstatsd")
# The telemetry clients' loggers: they repeat a missing agent on every flush.
_TELEMETRY_CLIENTS = ("ddtrace", "datadog")


class TelemetryClientThrottle(logging.Filter):
    """Lets a telemetry client's logger through once every ``seconds``, as a warning at most.

    ddtrace and the DogStatsD client log every failed flush when no agent answers; an absent agent
    is worth one line every ten minutes, not an error a second. Other loggers pass untouched.
    """

    def __init__(self, seconds: float = 600.0) -> None:
        super().__init__()
        self.seconds = seconds
        self._last: dict[str, float] = {}

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] not in _TELEMETRY_CLIENTS:
            return True
        now = time.monotonic()
        if now - self._last.get(record.name, -self.seconds) < self.seconds:
            return False
        self._last[record.name] = now
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class MaskingFormatter(logging.Formatter):
    """A text formatter whose output has personal data masked."""

    @override
    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, personal data masked, with the active span's ids."""

    def __init__(self, log_context: Callable[[], Mapping[str, str]] = dict) -> None:
        super().__init__()
        self.log_context = log_context

    @override
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "status": record.levelname,
            "logger.name": record.name,
            "logger.thread_name": record.threadName,
            "message": mask(record.getMessage()),
        }
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["error.kind"] = type(error).__name__
            line["error.message"] = mask(_text(error))
            line["error.stack"] = mask(self.formatException(record.exc_info))
        elif record.stack_info:
            line["error.stack"] = mask(self.formatStack(record.stack_info))
        line.update(self.log_context())
        return json.dumps(line, ensure_ascii=False, default=str)


def _text(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # a message that cannot even be formatted still names its type
        return type(error).__name__


class StandardErrorHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes to whatever ``sys.stderr`` is when a record is emitted.

    A handler bound to the stream of the moment outlives it when the command runs in-process with
    its output captured (a test's ``CliRunner``, an embedding program): a later record from any
    thread then writes to a closed stream and fails there. Resolving ``sys.stderr`` at each record,
    as the standard library's last-resort handler does, follows the interpreter's standard error.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        """The interpreter's standard error of this moment."""
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        """The stream is always the current ``sys.stderr``; nothing to bind."""


def configure_logging(settings: Settings) -> None:
    """Send every log record to stderr in ``settings.log_format``, at ``settings.log_level``, masked."""
    handler = StandardErrorHandler()
    handler.addFilter(TelemetryClientThrottle())
    json_lines = JsonFormatter() if settings.log_format == "json" else None
    handler.setFormatter(json_lines or MaskingFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    if json_lines is not None:  # after the handler is in place, so the backend's start is logged too
        json_lines.log_context = telemetry_from_settings(settings).log_context
