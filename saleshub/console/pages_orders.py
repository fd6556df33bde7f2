"""The console's order pages: orders newest first in keyset pages, and one order with its versions
and, beside it, its field lineage (the JSON of ``saleshub orders explain``, personal values masked; a
steward may show them with a reason, which is audited).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from saleshub.actions import events as event_actions
from saleshub.actions.lineage import order_lineage
from saleshub.console.api import actor_of
from saleshub.console.api_orders import lineage_catalogs, order_details, order_key
from saleshub.console.rendering import (
    acting,
    failure,
    page,
    runtime_of,
    shown_json,
    shown_value,
    to_login,
    who,
)
from saleshub.errors import SalesHubError
from saleshub.platform.auth import Principal
from saleshub.store import queries
from saleshub.store.failures import database_errors

__all__ = ["ORDERS_PER_PAGE", "order_pages_router"]

#: Orders on one page of the list.
ORDERS_PER_PAGE = 100


def order_pages_router() -> APIRouter:
    """The ``/console/orders`` routes."""
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/orders")
    def orders(
        request: Request,
        system: str | None = None,
        before: datetime | None = None,
        before_id: uuid.UUID | None = None,
    ) -> Response:
        me = who(request)
        if me is None:
            return to_login()
        try:
            key = order_key(before, before_id)
            with database_errors(), runtime_of(request).database.engine.connect() as conn:
                rows = queries.orders(conn, system=system, before=key, limit=ORDERS_PER_PAGE)
        except SalesHubError as exc:
            return failure(request, me, exc)
        older = None
        if len(rows) == ORDERS_PER_PAGE:
            last = rows[-1]
            older = {"before": last.updated_at.isoformat(), "before_id": str(last.hub_order_id)}
            if system:
                older["system"] = system
        return page(request, "orders.html", me, rows=rows, system=system, older=older, active="orders")

    def order_page(
        request: Request, me: Principal, order: str, version: int | None, reason: str | None
    ) -> Response:
        hub = runtime_of(request)
        try:
            details = order_details(hub, order)
        except SalesHubError as exc:
            return failure(request, me, exc)
        lineage: dict[str, Any] | None = None
        problem = None
        try:
            lineage = order_lineage(
                hub.database.engine,
                lineage_catalogs(request),
                str(details["order"]["hub_order_id"]),
                version=version,
                unmask_reason=reason,
                actor=actor_of(me),
            )
        except SalesHubError as exc:  # the order is shown; the lineage says why it is missing
            if reason is not None:
                return failure(request, me, exc)
            problem = str(exc)
        return page(
            request,
            "order.html",
            me,
            order=details["order"],
            versions=details["versions"],
            events=details["events"],
            content=shown_json(me, details["order"]["content"]),
            lineage=lineage,
            lineage_problem=problem,
            value_json=lambda value: (
                json.dumps(value, ensure_ascii=False) if reason is not None else shown_value(me, value)
            ),
            first_error=event_actions.first_error,
            active="orders",
        )

    @router.get("/orders/{order}")
    def order(request: Request, order: str, version: int | None = None) -> Response:
        me = who(request)
        if me is None:
            return to_login()
        return order_page(request, me, order, version, None)

    @router.post("/orders/{order}/lineage")
    def unmasked(
        request: Request,
        order: str,
        reason: str = Form(""),
        version: str = Form(""),
        csrf: str = Form(""),
    ) -> Response:
        me = acting(request, csrf, "steward", "showing personal data in a lineage")
        if isinstance(me, RedirectResponse):
            return me
        return order_page(request, me, order, int(version) if version.isdigit() else None, reason)

    return router
