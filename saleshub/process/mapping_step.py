"""The CPU side of processing one recorded event: decode, classify and map it, no database.

A cancellation by reference (``EventInfo.cancels``) stops after classifying: its order is the
stored one, found when the batch is written (``saleshub.process.cancelling``).

``map_event`` never raises for bad input: a ``DataError`` becomes the event's structured errors
(quarantined), any other exception is logged and recorded as ``failed`` with its error, so a bug
cannot lose an event or stop its lane.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from adapters.base import EventInfo, SourceAdapter
from canonical.model import ServiceOrder
from saleshub.errors import DataError
from saleshub.mapping.engine import CompiledMapping, MappedOrder
from saleshub.store.events import QueuedEvent, Stage, error_record

__all__ = ["CancelledOrder", "Processed", "map_event"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CancelledOrder:
    """The order a cancellation by reference writes, and the mapping revision its content came from."""

    order: ServiceOrder
    mapping: str
    mapping_hash: str


@dataclass(slots=True)
class Processed:
    """One queued event after mapping: the mapped order, or where and why it stopped."""

    queued: QueuedEvent
    started: float
    info: EventInfo | None = None
    mapping: CompiledMapping | None = None
    mapped: MappedOrder | None = None
    #: A cancellation by reference's order, set in the writing transaction (``process.cancelling``).
    cancelled: CancelledOrder | None = None
    stage: Stage | None = None
    errors: dict[str, object] | None = None
    trace: dict[str, str] | None = None  # the processor's span carrier, stored for the relay


def map_event(adapter: SourceAdapter | None, queued: QueuedEvent) -> Processed:
    """Decode, classify and map ``queued`` with ``adapter`` (``None``: the system has no adapter)."""
    result = Processed(queued, time.perf_counter())
    if adapter is None or queued.body is None:
        reason = (
            f"no adapter for system {queued.system!r} in this hub"
            if adapter is None
            else queued.body_missing or "the raw body is no longer kept; the event cannot be processed"
        )
        result.stage = Stage.INTERNAL
        result.errors = {"stage": Stage.INTERNAL.value, "error": "Unprocessable", "message": reason}
        return result
    stage = Stage.DECODE
    try:
        document = adapter.decode(queued.body)
        stage = Stage.CLASSIFY
        result.info = adapter.classify(document)
        if result.info.cancels is not None:  # nothing to map: the stored order is cancelled
            return result
        stage = Stage.MAPPING
        result.mapping = adapter.catalog.get(adapter.system, adapter.mapping_name(document, result.info))
        result.mapped = result.mapping.apply(document)
    except DataError as exc:
        result.stage, result.errors = stage, error_record(stage, exc)
    except Exception as exc:  # a bug must not lose the event: record it as failed, log the trace
        log.exception("internal error while processing event %s at stage %s", queued.event_id, stage.value)
        result.stage = Stage.INTERNAL
        result.errors = {**error_record(Stage.INTERNAL, exc), "at_stage": stage.value}
    return result
