"""Intake: what every transport checks before recording an event, and nothing more.

``admit(event, adapter)`` checks the content type, decodes the body and classifies it (event type,
idempotency key, the order's reference), so that what is not an event is refused at once (a
webhook's synchronous 4xx) and an accepted event is recorded with its keys. Mapping is not done
here: a processor maps recorded events later (``saleshub.process``), so mapping cost or a mapping
bug can never make intake slow or fail.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.base import EventInfo, SourceAdapter
from saleshub.errors import DataError
from saleshub.store.events import Stage, Transport, error_record
from saleshub.store.failures import as_retriable

__all__ = ["Admission", "InboundEvent", "admit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """One payload as a transport received it.

    ``idempotency_key`` is the transport's own key (the ``webhook-id`` header); without one, the
    source's event id is used, and failing that the body's SHA-256, prefixed with ``position`` where
    the transport has one (a Kafka record's ``topic:partition:offset``): two Kafka records with the
    same bytes and no event id are two events, while a record consumed again is the same event.
    ``trace`` is the propagation carrier of the span that records the event (stored in its
    ``headers`` under ``trace``, where a processor continues the trace); empty when nothing is traced.
    """

    system: str
    transport: Transport
    body: bytes
    content_type: str | None
    idempotency_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    replay_of: uuid.UUID | None = None
    trace: Mapping[str, str] = field(default_factory=dict)
    position: str | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """What intake learned of an event: its classification, or why its body was refused."""

    info: EventInfo | None = None
    stage: Stage | None = None
    errors: dict[str, Any] | None = None

    @property
    def refused(self) -> bool:
        """Whether the body is not a usable event (wrong type, undecodable, unclassifiable, a bug)."""
        return self.info is None

    def idempotency_key(self, event: InboundEvent) -> str:
        """The key the event is recorded under: the transport's, else the source's event id, else the
        body's hash (after the transport's position of the body, if it has one)."""
        key = event.idempotency_key or (self.info.idempotency_key if self.info else None)
        if key:
            return key
        digest = "sha256:" + hashlib.sha256(event.body).hexdigest()
        return f"{event.transport}:{event.position}:{digest}" if event.position else digest


def admit(event: InboundEvent, adapter: SourceAdapter) -> Admission:
    """Check, decode and classify ``event`` (no database, no mapping); never raises for bad input."""
    if not adapter.accepts(event.content_type):
        return Admission(
            stage=Stage.CONTENT_TYPE,
            errors={
                "stage": Stage.CONTENT_TYPE.value,
                "error": "UnsupportedMediaType",
                "message": f"content type {event.content_type!r} is not one of "
                f"{', '.join(sorted(adapter.media_types))}",
            },
        )
    stage = Stage.DECODE
    try:
        document = adapter.decode(event.body)
        stage = Stage.CLASSIFY
        return Admission(info=adapter.classify(document))
    except DataError as exc:
        return Admission(stage=stage, errors=error_record(stage, exc))
    except Exception as exc:
        if as_retriable(exc) is not None:  # an adapter that reads something remote: not the body's fault
            raise
        # A bug must not lose the event: it is recorded as failed with the error, and logged.
        log.exception("internal error at intake of a %s event (stage %s)", event.system, stage.value)
        errors = error_record(Stage.INTERNAL, exc)
        errors["at_stage"] = stage.value
        return Admission(stage=Stage.INTERNAL, errors=errors)
