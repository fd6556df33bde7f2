"""Orders in ``/api/v1``: keyset pages of orders, one order with its versions, the field lineage of
an order version or of an event.

The same conventions as ``saleshub.console.api``: bearer JWTs, personal data masked for viewers,
problem documents for errors. The lineage is the JSON of ``saleshub orders explain --json``;
personal values in it are shown only to a steward who gives a reason, and that is audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from saleshub.actions import lineage as lineage_actions
from saleshub.console.api import Caller, actor_of, error_response, masked, plain
from saleshub.errors import InvalidRequestError, NotFoundError, SalesHubError
from saleshub.runtime import HubRuntime
from saleshub.stewards.lineage import RevisionCatalogs
from saleshub.store import queries
from saleshub.store.failures import database_errors

__all__ = ["lineage_catalogs", "order_details", "order_key", "orders_router"]


def _hub(request: Request) -> HubRuntime:
    hub: HubRuntime = request.app.state.runtime
    return hub


def lineage_catalogs(request: Request) -> RevisionCatalogs:
    """The application's compiled stored revisions (each compiled once per process, on first use)."""
    state = request.app.state
    if not hasattr(state, "lineage_catalogs"):
        state.lineage_catalogs = RevisionCatalogs()
    catalogs: RevisionCatalogs = state.lineage_catalogs
    return catalogs


def orders_router() -> APIRouter:
    """The order routes of ``/api/v1``."""
    router = APIRouter(prefix="/api/v1", tags=["operator API"])

    def run(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except SalesHubError as exc:
            return error_response(exc)

    @router.get(
        "/orders",
        summary="Orders, most recently updated first (keyset pages: the last row's updated_at and id)",
    )
    def list_orders(
        request: Request,
        caller: Caller,
        system: str | None = None,
        status: str | None = None,
        before: Annotated[datetime | None, Query(description="the previous page's last updated_at")] = None,
        before_id: Annotated[
            uuid.UUID | None, Query(description="the previous page's last hub_order_id")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> Any:
        hub = _hub(request)

        def read() -> Any:
            key = order_key(before, before_id)
            with database_errors(), hub.database.engine.connect() as conn:
                rows = queries.orders(conn, system=system, status=status, before=key, limit=limit)
            return masked([plain(dict(r._mapping)) for r in rows], caller)

        return run(read)

    @router.get(
        "/orders/{order}", summary="One order (hub id or SYSTEM:EXTERNAL_ID) with versions and events"
    )
    def show_order(request: Request, caller: Caller, order: str) -> Any:
        hub = _hub(request)

        def read() -> Any:
            return masked(plain(order_details(hub, order)), caller)

        return run(read)

    @router.get(
        "/orders/{order}/lineage",
        summary="Why each field of an order version has its value (`saleshub orders explain --json`)",
    )
    def lineage(
        request: Request,
        caller: Caller,
        order: str,
        version: Annotated[int | None, Query(ge=1, description="default: the newest")] = None,
        field: Annotated[list[str] | None, Query(description="canonical fields; default all")] = None,
        unmask: Annotated[
            bool, Query(description="show personal values (steward; needs a reason; audited)")
        ] = False,
        reason: Annotated[str | None, Query(description="why personal values are shown")] = None,
    ) -> Any:
        hub = _hub(request)

        def read() -> Any:
            if unmask:
                caller.require("steward", "showing personal data in a lineage")
            found = lineage_actions.order_lineage(
                hub.database.engine,
                lineage_catalogs(request),
                order,
                version=version,
                fields=field or (),
                unmask_reason=(reason or "") if unmask else None,
                actor=actor_of(caller),
            )
            return found if unmask else masked(found, caller)

        return run(read)

    @router.get(
        "/events/{event_id}/lineage",
        summary="One event's field lineage (`saleshub orders explain --event --json`): a quarantined "
        "event up to the field that failed",
    )
    def event_lineage(
        request: Request,
        caller: Caller,
        event_id: uuid.UUID,
        field: Annotated[list[str] | None, Query(description="canonical fields; default all")] = None,
        unmask: Annotated[
            bool, Query(description="show personal values (steward; needs a reason; audited)")
        ] = False,
        reason: Annotated[str | None, Query(description="why personal values are shown")] = None,
    ) -> Any:
        hub = _hub(request)

        def read() -> Any:
            if unmask:
                caller.require("steward", "showing personal data in a lineage")
            found = lineage_actions.event_lineage(
                hub.database.engine,
                lineage_catalogs(request),
                event_id,
                fields=field or (),
                unmask_reason=(reason or "") if unmask else None,
                actor=actor_of(caller),
            )
            return found if unmask else masked(found, caller)

        return run(read)

    return router


def order_key(before: datetime | None, before_id: uuid.UUID | None) -> queries.OrderKey | None:
    """The key of the previous page's last order, from ``before`` and ``before_id`` (both or neither)."""
    if before is None and before_id is None:
        return None
    if before is None or before_id is None:
        raise InvalidRequestError("page back with both before (updated_at) and before_id (hub_order_id)")
    return before, before_id


def order_details(hub: HubRuntime, order: str) -> dict[str, Any]:
    """An order (by hub id or ``SYSTEM:EXTERNAL_ID``) with its versions and events."""
    with database_errors(), hub.database.engine.connect() as conn:
        if ":" in order:
            system, external_id = order.split(":", 1)
            row = queries.find_order(conn, system=system, external_id=external_id)
        else:
            try:
                hub_id = uuid.UUID(order)
            except ValueError:
                raise InvalidRequestError(
                    f"an order is a hub id or SYSTEM:EXTERNAL_ID; got {order!r}"
                ) from None
            row = queries.find_order(conn, hub_order_id=hub_id)
        if row is None:
            raise NotFoundError(f"no order {order}")
        versions = queries.order_versions(conn, row.hub_order_id)
        events = queries.order_events(conn, row.hub_order_id)
    return {
        "order": dict(row._mapping),
        "versions": [dict(v._mapping) for v in versions],
        "events": [dict(e._mapping) for e in events],
    }
