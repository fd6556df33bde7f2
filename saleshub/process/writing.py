"""Writing a processed batch: orders, versions, outbox rows and each event's final status, together.

Called in the processor's transaction. Events are written in rounds in which no order repeats, so
a later event of an order sees the earlier one's result (the store's upsert rules compare with the
stored order). Per event:

* mapped → the order is stored by ``saleshub.store.orders`` (created, updated, cancelled, duplicate
  or stale) and a created or changed order puts its canonical event in the outbox;
* a cancellation by reference → the stored order with status ``CANCELLED``
  (``saleshub.process.cancelling``) is stored the same way, or the event is quarantined when the
  hub does not hold the order it names;
* quarantined or failed → the event keeps its errors and an ``order_rejected`` event goes out;
* in every case the event's final status, mapping revision and order version are set and its
  queue row removed.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import Connection

from canonical.events import EventKind
from saleshub.mapping.personal import acknowledged_targets
from saleshub.process.cancelling import cancelled_order_id, resolve_cancellations
from saleshub.process.mapping_step import Processed
from saleshub.publish.outbox import Outbox
from saleshub.store import events as store
from saleshub.store.events import Stage, Status, error_record
from saleshub.store.orders import NewOrder, OrderOutcome, OrderWrite, write_orders
from saleshub.store.outbox import write_outbox_rows

__all__ = ["OutcomeWriter"]

_OUTCOME_KIND = {
    OrderOutcome.CREATED: EventKind.ORDER_RECEIVED,
    OrderOutcome.UPDATED: EventKind.ORDER_UPDATED,
    OrderOutcome.CANCELLED: EventKind.ORDER_CANCELLED,
}

_OUTCOME_STATUS = {
    OrderOutcome.CREATED: Status.MAPPED,
    OrderOutcome.UPDATED: Status.MAPPED,
    OrderOutcome.CANCELLED: Status.MAPPED,
    OrderOutcome.DUPLICATE: Status.DUPLICATE,
    OrderOutcome.STALE: Status.STALE,
}


class OutcomeWriter:
    """Writes processed events in the caller's transaction (see the module docstring)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def write(self, conn: Connection, processed: list[Processed]) -> list[Status]:
        """Write ``processed`` in their order; the final status of each."""
        statuses: dict[int, Status] = {}
        pending = list(enumerate(processed))
        while pending:
            round_: list[tuple[int, Processed]] = []
            later: list[tuple[int, Processed]] = []
            orders: set[object] = set()
            for index, item in pending:
                order = _order_of(item)
                if later or (order is not None and order in orders):
                    later.append((index, item))
                    continue
                if order is not None:
                    orders.add(order)
                round_.append((index, item))
            statuses.update(self._write_round(conn, round_))
            pending = later
        return [statuses[index] for index in range(len(processed))]

    def _write_round(self, conn: Connection, round_: list[tuple[int, Processed]]) -> dict[int, Status]:
        resolve_cancellations(conn, [item for _, item in round_])
        targets = [_new_order(item) for _, item in round_]
        writes = iter(write_orders(conn, [target for target in targets if target is not None]))
        finished, outbox_rows, statuses = [], [], {}
        for (index, item), target in zip(round_, targets, strict=True):
            written = next(writes) if target is not None else None
            status = self._status(item, written)
            if written is None:
                outbox_rows.append(self._rejection(item, status))
            else:
                kind = _OUTCOME_KIND.get(written.outcome)
                if kind is not None and target is not None:
                    row = self.outbox.order_row(
                        kind,
                        event_id=item.queued.event_id,
                        occurred_at=item.queued.received_at,
                        order=target.order,
                        version_no=written.version_no,
                        mapping=target.mapping,
                    )
                    outbox_rows.append({**row, "data_key": written.data_key})
            finished.append(_finished_row(item, status, written))
            statuses[index] = status
        store.finish_events(conn, finished)
        write_outbox_rows(conn, outbox_rows)
        store.dequeue(conn, [item.queued.queue_id for _, item in round_])
        return statuses

    def write_failed(self, conn: Connection, item: Processed, exc: BaseException) -> None:
        """Mark ``item`` failed with ``exc`` (it could not be written), announce it, dequeue it."""
        item.mapped, item.cancelled, item.stage = None, None, Stage.INTERNAL
        item.errors = {**error_record(Stage.INTERNAL, exc), "at_stage": "store"}
        store.finish_events(conn, [_finished_row(item, Status.FAILED, None)])
        write_outbox_rows(conn, [self._rejection(item, Status.FAILED)])
        store.dequeue(conn, [item.queued.queue_id])

    @staticmethod
    def _status(item: Processed, written: OrderWrite | None) -> Status:
        if written is not None:
            return _OUTCOME_STATUS[written.outcome]
        return Status.FAILED if item.stage is Stage.INTERNAL else Status.QUARANTINED

    def _rejection(self, item: Processed, status: Status) -> dict[str, Any]:
        queued = item.queued
        return self.outbox.rejection_row(
            event_id=queued.event_id,
            occurred_at=queued.received_at,
            system=queued.system,
            transport=queued.transport,
            status=status.value,
            errors=item.errors or {},
            event_type=item.info.event_type.value if item.info else None,
            mapping=item.mapping.identity.label if item.mapping else None,
        )


def _order_of(item: Processed) -> uuid.UUID | None:
    """The hub order an event concerns, if known before writing (rounds keep orders distinct)."""
    if item.mapped is not None:
        return item.mapped.order.hub_order_id
    info = item.info
    if item.errors is None and info is not None and info.cancels is not None and info.order_key:
        return cancelled_order_id(item.queued.system, info.order_key)
    return None


def _new_order(item: Processed) -> NewOrder | None:
    """What the event writes: its mapped order, or a cancellation's stored order as CANCELLED."""
    event_id = item.queued.event_id
    sealed = acknowledged_targets(item.mapping) if item.mapping is not None else frozenset()
    if item.mapped is not None:
        mapping = item.mapped.mapping
        return NewOrder(item.mapped.order, event_id, mapping.label, mapping.content_hash, sealed)
    if item.cancelled is not None:
        cancelled = item.cancelled
        return NewOrder(cancelled.order, event_id, cancelled.mapping, cancelled.mapping_hash, sealed)
    return None


def _finished_row(item: Processed, status: Status, written: OrderWrite | None) -> dict[str, Any]:
    mapping = item.mapping
    return {
        "event_id": item.queued.event_id,
        "received_at": item.queued.received_at,
        "status": status.value,
        "event_type": item.info.event_type.value if item.info else None,
        "errors": item.errors,
        "mapping": mapping.identity.label if mapping else None,
        "mapping_hash": mapping.identity.content_hash if mapping else None,
        "hub_order_id": written.hub_order_id if written else None,
        "order_version_no": written.version_no if written else None,
        "processing_ms": round((time.perf_counter() - item.started) * 1000, 3),
        "trace": item.trace,
    }
