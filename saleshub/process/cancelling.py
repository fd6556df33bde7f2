"""Cancellations by reference: the stored order, as a new version in status ``CANCELLED``.

A source may cancel an order by naming it alone (a Peppol ``OrderCancellation`` restates no
delivery address, lines or totals): its adapter classifies the event with ``EventInfo.cancels``
and no mapping runs. Here, in the processor's transaction and before the batch's orders are
written, each such event gets the order to write: the stored order's content with status
``CANCELLED``, the cancellation's reason and time, and its source version (if it has one). It is
then written like any mapped order (``saleshub.store.orders``: a new version, or stale/duplicate
by the same rules) and goes to the outbox as an ``order_cancelled`` event.

A cancellation of an order the hub does not hold is quarantined with ``UnknownOrderError``: its
message tells the steward to check the reference, or to replay the event once the order arrived.
"""

from __future__ import annotations

import uuid

from pydantic import ValidationError
from sqlalchemy import Connection

from adapters.base import Cancellation, EventInfo
from canonical.enums import OrderStatus
from canonical.model import ServiceOrder, hub_order_id_for
from saleshub.errors import UnknownOrderError
from saleshub.process.mapping_step import CancelledOrder, Processed
from saleshub.store.events import Stage, error_record
from saleshub.store.orders import StoredOrder, stored_orders

__all__ = ["cancelled_order_id", "resolve_cancellations"]


def cancelled_order_id(system: str, order_key: str) -> uuid.UUID:
    """The hub's id of the order a cancellation by reference names."""
    return hub_order_id_for(system, order_key)


def resolve_cancellations(conn: Connection, items: list[Processed]) -> None:
    """Give each pending cancellation by reference in ``items`` its order, or quarantine it."""
    pending = [(item, info, key) for item, info, key in map(_pending, items) if info is not None]
    if not pending:
        return
    ids = [cancelled_order_id(item.queued.system, key) for item, _, key in pending]
    stored = stored_orders(conn, sorted(set(ids)))
    for (item, info, key), order_id in zip(pending, ids, strict=True):
        found = stored.get(order_id)
        if found is None:
            exc = UnknownOrderError(item.queued.system, key)
            item.stage, item.errors = Stage.MAPPING, error_record(Stage.MAPPING, exc)
            continue
        try:
            item.cancelled = _cancelled(info, found)
        except ValidationError as exc:  # the stored content no longer validates: the steward's call
            item.stage, item.errors = Stage.MAPPING, error_record(Stage.MAPPING, exc)


def _pending(item: Processed) -> tuple[Processed, EventInfo | None, str]:
    """``item`` with its event info and order key if it is a cancellation by reference to resolve."""
    info = item.info
    resolved = item.errors is not None or item.mapped is not None or item.cancelled is not None
    if not resolved and info is not None and info.cancels is not None and info.order_key:
        return item, info, info.order_key
    return item, None, ""


def _cancelled(info: EventInfo, stored: StoredOrder) -> CancelledOrder:
    cancels = info.cancels or Cancellation()
    content = dict(stored.content)
    content["status"] = OrderStatus.CANCELLED.value
    content["cancellation_reason"] = cancels.reason or content.get("cancellation_reason")
    if cancels.cancelled_at is not None:
        content["source_updated_at"] = cancels.cancelled_at
    # A cancellation carrying its own source version is stale when older than the stored order's
    # (``saleshub.store.orders.is_stale``); one without keeps the stored version and always applies.
    if info.source_version is not None:
        content["source_version"] = info.source_version
    return CancelledOrder(ServiceOrder.model_validate(content), stored.mapping, stored.mapping_hash)
