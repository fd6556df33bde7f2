"""Telemetry of one processed batch: per-event spans continuing each event's trace, and its metrics.

Built by the processor only when telemetry is enabled (``NoTelemetry`` costs the batch one
attribute check). For each queued event:

* a ``process`` span, a child of the carrier stored when the event was recorded (``headers`` →
  ``trace``), around decoding and mapping, tagged with system, transport, event id, channel,
  country, mapping revision and, for a stopped event, the stage and error type;
* a ``store`` span under it, open while the batch is written, whose carrier goes into the event's
  ``headers`` → ``trace`` in the same transaction, so the relay's ``publish`` span continues it;
* both get the event's final status when the batch commits (a quarantined or failed event marks its
  ``process`` span as an error, with the error type), and the event is counted
  (``saleshub.events.finished``) with its latency from receipt (``saleshub.process.latency``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from saleshub.platform.metrics import EVENTS_FINISHED, PROCESS_LATENCY
from saleshub.platform.telemetry import Span, Tag, Telemetry
from saleshub.process.mapping_step import Processed
from saleshub.store.events import QueuedEvent, Status

__all__ = ["BatchTrace"]

_STOPPED = (Status.QUARANTINED, Status.FAILED)


class BatchTrace:
    """The spans of one batch's events, in the batch's order."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self._spans: list[tuple[Span, Span]] = []
        self._tags: list[dict[str, Tag]] = []

    def map(self, queued: QueuedEvent, mapper: Callable[[], Processed]) -> Processed:
        """Run ``mapper`` for ``queued`` inside its ``process`` span; open its ``store`` span."""
        tags: dict[str, Tag] = {"system": queued.system, "transport": queued.transport}
        process = self.telemetry.start_span(
            "process", parent=queued.trace or None, event_id=str(queued.event_id), **tags
        )
        item = mapper()
        if item.mapped is not None:
            order = item.mapped.order
            tags.update(channel=order.sales_channel.value, country=order.country_code)
        if item.mapping is not None:
            identity = item.mapping.identity
            revision = f"r{identity.deployment}" if identity.deployment is not None else identity.revision
            process.set_tags(mapping=identity.label, mapping_revision=revision)
        if item.stage is not None:
            process.set_tags(stage=item.stage.value, error_type=str((item.errors or {}).get("error", "")))
        process.set_tags(**tags)
        store = self.telemetry.start_span("store", parent=process.context(), **tags)
        item.trace = store.context() or None
        self._spans.append((process, store))
        self._tags.append(tags)
        return item

    def finish(self, processed: list[Processed], statuses: list[Status]) -> None:
        """Tag every span with its event's final status, end them, count the events."""
        now = datetime.now(UTC)
        for (process, store), tags, item, status in zip(
            self._spans, self._tags, processed, statuses, strict=True
        ):
            store.set_tags(status=status.value)
            store.finish()
            process.set_tags(status=status.value)
            if status in _STOPPED:  # Datadog's error flag, so error tracking and monitors see it
                stage = item.stage.value if item.stage is not None else "process"
                error_type = str((item.errors or {}).get("error", "")) or status.value
                process.set_failed(error_type, f"event {status.value} at stage {stage}")
            process.finish()
            self.telemetry.count(EVENTS_FINISHED, 1, status=status.value, **tags)
            latency = (now - item.queued.received_at).total_seconds()
            self.telemetry.timing(
                PROCESS_LATENCY,
                latency,
                system=item.queued.system,
                transport=item.queued.transport,
                status=status.value,
            )

    def fail(self, exc: BaseException) -> None:
        """The batch was not written (it is processed again later): end every span as failed."""
        for process, store in self._spans:
            store.set_error(exc)
            store.finish()
            process.set_error(exc)
            process.finish()
