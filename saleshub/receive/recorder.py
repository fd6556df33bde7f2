"""Recording: the one write every transport makes — the raw event, committed before any answer.

``Recorder.record_many(conn, items)`` writes admitted events in the caller's transaction:

* it claims each event's idempotency key; a key seen before writes nothing and answers with the
  original event as it stands now (``repeated``);
* it stores the exact raw bytes with the event's keys, status ``accepted``, and queues the event
  for a processor (lane of the order's reference), waking the processors on commit;
* an event whose body intake refused (wrong content type, undecodable, unclassifiable) is stored
  ``quarantined`` with its error and not queued, and its ``order_rejected`` event goes to the
  outbox in the same transaction.

Every recorded event is counted (``saleshub.events.recorded``), and one that intake refused is
also counted at its final status (``saleshub.events.finished``), through the telemetry port.

So a transport that sees a receipt knows the event is durably recorded (a 2xx means exactly that);
one that sees ``RetriableError`` knows nothing was written and may retry the same event.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from saleshub.platform.metrics import EVENTS_FINISHED, EVENTS_RECORDED
from saleshub.platform.telemetry import NoTelemetry, Span, Telemetry
from saleshub.publish.outbox import Outbox
from saleshub.receive.intake import Admission, InboundEvent
from saleshub.store import events as store
from saleshub.store.events import EventOutcome, Stage, Status
from saleshub.store.failures import database_errors
from saleshub.store.outbox import write_outbox_rows

__all__ = ["Item", "Receipt", "Recorder", "mark_refused"]

_INTAKE_STAGES = (Stage.CONTENT_TYPE, Stage.DECODE, Stage.CLASSIFY)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What recording one event did. ``repeated``: the key was seen before and nothing was written."""

    event_id: uuid.UUID
    status: Status
    repeated: bool = False
    stage: Stage | None = None
    errors: dict[str, Any] | None = None
    hub_order_id: uuid.UUID | None = None
    order_version_no: int | None = None
    #: A repeated key whose original event had a different body: the sender reused an id.
    conflict: bool = False

    @property
    def refused(self) -> bool:
        """Whether intake refused the body (wrong type, undecodable, unclassifiable)."""
        return self.stage in _INTAKE_STAGES

    @property
    def stopped_at_intake(self) -> bool:
        """Whether intake refused the body or failed on it (a bug at decode or classify).

        Such an event never reached a processor; an event quarantined by its mapping did.
        """
        if self.refused:
            return True
        at_stage = (self.errors or {}).get("at_stage")
        return self.stage is Stage.INTERNAL and at_stage in {stage.value for stage in _INTAKE_STAGES}

    @classmethod
    def of_repeat(cls, outcome: EventOutcome, body: bytes | None = None) -> Receipt:
        """The receipt of a repeated key: the original event as it stands now.

        With ``body``, ``conflict`` says whether the original event's body was a different one.
        """
        conflict = (
            body is not None
            and outcome.body_sha256 is not None
            and outcome.body_sha256 != hashlib.sha256(body).digest()
        )
        return cls(
            outcome.event_id,
            outcome.status,
            repeated=True,
            stage=outcome.stage,
            errors=outcome.errors,
            hub_order_id=outcome.hub_order_id,
            order_version_no=outcome.order_version_no,
            conflict=conflict,
        )


Item = tuple[InboundEvent, Admission]


class Recorder:
    """Records admitted events (see the module docstring)."""

    def __init__(self, engine: Engine, outbox: Outbox, telemetry: Telemetry | None = None) -> None:
        self.engine = engine
        self.outbox = outbox
        self.telemetry = telemetry or NoTelemetry()

    def record(self, event: InboundEvent, admission: Admission) -> Receipt:
        """Record one event in a transaction of its own; raises ``RetriableError`` if the database is down."""
        return self.record_batch([(event, admission)])[0]

    def record_batch(self, items: Sequence[Item]) -> list[Receipt]:
        """Record events in one transaction of their own (group commit); one receipt each, in order."""
        with database_errors(), self.engine.begin() as conn:
            receipts = self.record_many(conn, items)
        self.count(items, receipts)
        return receipts

    def record_many(self, conn: Connection, items: Sequence[Item]) -> list[Receipt]:
        """Record events in ``conn``'s transaction, in their order; one receipt each.

        Events are written in rounds in which no idempotency key repeats, so a repeat within one
        batch is answered with the first event, as it would be across batches.
        """
        receipts: dict[int, Receipt] = {}
        pending = list(enumerate(items))
        while pending:
            round_: list[tuple[int, InboundEvent, Admission, str]] = []
            later: list[tuple[int, Item]] = []
            seen: set[tuple[str, str]] = set()
            for index, (event, admission) in pending:
                key = admission.idempotency_key(event)
                if (event.system, key) in seen or later:
                    later.append((index, (event, admission)))
                    continue
                seen.add((event.system, key))
                round_.append((index, event, admission, key))
            receipts.update(self._record_round(conn, round_))
            pending = later
        return [receipts[index] for index in range(len(items))]

    def count(self, items: Sequence[Item], receipts: Sequence[Receipt]) -> None:
        """Count recorded events (after their commit; ``record_batch`` does, ``record_many`` callers too)."""
        if not self.telemetry.enabled:
            return
        for (event, _), receipt in zip(items, receipts, strict=True):
            if receipt.repeated:
                continue
            tags = {"system": event.system, "transport": event.transport, "status": receipt.status.value}
            self.telemetry.count(EVENTS_RECORDED, 1, **tags)
            if receipt.status is not Status.ACCEPTED:
                self.telemetry.count(EVENTS_FINISHED, 1, **tags)

    def _record_round(
        self, conn: Connection, round_: list[tuple[int, InboundEvent, Admission, str]]
    ) -> dict[int, Receipt]:
        rows: list[dict[str, Any]] = []
        for _, event, admission, key in round_:
            event_id = uuid.uuid4()
            if admission.info is None:
                status = Status.FAILED if admission.stage is Stage.INTERNAL else Status.QUARANTINED
                receipt = Receipt(event_id, status, stage=admission.stage, errors=admission.errors)
                lane = None
            else:
                receipt = Receipt(event_id, Status.ACCEPTED)
                lane = store.lane_of(event.system, admission.info.order_key or key)
            rows.append({**_event_row(event, admission, receipt, key), "lane": lane, "receipt": receipt})
        claimed = store.record_events(conn, rows)
        repeats = self._repeats(conn, round_, rows, claimed)
        receipts: dict[int, Receipt] = {}
        rejections: list[dict[str, Any]] = []
        for (index, event, _, key), row in zip(round_, rows, strict=True):
            receipt = row["receipt"]
            if receipt.event_id not in claimed:
                receipts[index] = Receipt.of_repeat(repeats[event.system, key], event.body)
                continue
            receipts[index] = receipt
            if receipt.status is not Status.ACCEPTED:
                rejections.append(self._rejection(event, receipt))
        write_outbox_rows(conn, rejections)
        return receipts

    @staticmethod
    def _repeats(
        conn: Connection,
        round_: list[tuple[int, InboundEvent, Admission, str]],
        rows: list[dict[str, Any]],
        claimed: set[uuid.UUID],
    ) -> dict[tuple[str, str], store.EventOutcome]:
        """The events holding the round's keys that were seen before, one query per system."""
        keys: dict[str, list[str]] = {}
        for (_, event, _, key), row in zip(round_, rows, strict=True):
            if row["receipt"].event_id not in claimed:
                keys.setdefault(event.system, []).append(key)
        return {
            (system, key): outcome
            for system, wanted in keys.items()
            for key, outcome in store.repeated_events(conn, system, wanted).items()
        }

    def _rejection(self, event: InboundEvent, receipt: Receipt) -> dict[str, Any]:
        return self.outbox.rejection_row(
            event_id=receipt.event_id,
            occurred_at=event.received_at,
            system=event.system,
            transport=event.transport,
            status=receipt.status.value,
            errors=receipt.errors or {},
            event_type=None,
            mapping=None,
        )


def _event_row(event: InboundEvent, admission: Admission, receipt: Receipt, key: str) -> dict[str, Any]:
    info = admission.info
    return {
        "event_id": receipt.event_id,
        "received_at": event.received_at,
        "source_system": event.system,
        "transport": event.transport,
        "event_type": info.event_type.value if info else None,
        "content_type": event.content_type,
        "raw_body": None if event.replay_of else event.body,
        "body_sha256": hashlib.sha256(event.body).digest(),
        "body_size": len(event.body),
        "idempotency_key": key,
        "source_event_key": info.idempotency_key if info else None,
        "order_key": info.order_key if info else None,
        "headers": {**event.headers, "trace": dict(event.trace)} if event.trace else dict(event.headers),
        "status": receipt.status.value,
        "errors": receipt.errors,
        "mapping": None,
        "mapping_hash": None,
        "hub_order_id": None,
        "order_version_no": None,
        "processing_ms": None,
        "replay_of": event.replay_of,
    }


def mark_refused(span: Span, receipt: Receipt) -> None:
    """Mark a record span as an error when intake quarantined or failed its event (not on a repeat)."""
    if receipt.repeated or receipt.status not in (Status.QUARANTINED, Status.FAILED):
        return
    stage = receipt.stage.value if receipt.stage is not None else "record"
    error_type = str((receipt.errors or {}).get("error", "")) or receipt.status.value
    span.set_failed(error_type, f"event {receipt.status.value} at stage {stage}")
