"""``/api/v1/privacy``: a data subject's erasure (dry run first) and export, for the privacy officer.

The same conventions as ``saleshub.console.api``: bearer JWTs, the role checked on the server
(``admin``: an erasure cannot be undone, and an export holds a person's whole record), the action
audited by the action layer (``saleshub.actions.privacy``, which the CLI calls too), problem
documents for errors.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from saleshub.actions import privacy as privacy_actions
from saleshub.console.api import Caller, actor_of, error_response
from saleshub.errors import SalesHubError
from saleshub.runtime import HubRuntime

__all__ = ["ErasureRequest", "ExportRequest", "privacy_router"]


class ExportRequest(BaseModel):
    """Who the request is about: any combination; orders matching any are the subject's."""

    emails: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list, description="E.164")
    customer_refs: list[str] = Field(default_factory=list, description="customer or loyalty references")
    linked_customers: list[int] = Field(default_factory=list, description="linked customer ids")
    reason: str = Field(default="", description="the request's reference, e.g. its ticket number")

    def criteria(self) -> privacy_actions.Criteria:
        """The store's search criteria."""
        return privacy_actions.Criteria(
            tuple(self.emails), tuple(self.phones), tuple(self.customer_refs), tuple(self.linked_customers)
        )


class ErasureRequest(ExportRequest):
    """An erasure: ``dry_run`` (the default) lists what would be erased and changes nothing."""

    dry_run: bool = Field(default=True, description="false erases; give `reason` then")


def _hub(request: Request) -> HubRuntime:
    hub: HubRuntime = request.app.state.runtime
    return hub


def privacy_router() -> APIRouter:
    """The routes of this module, under ``/api/v1``."""
    router = APIRouter(prefix="/api/v1", tags=["operator API"])

    @router.post("/privacy/erasures", summary="Erase a data subject; a dry run by default (admin)")
    def erase(request: Request, caller: Caller, payload: ErasureRequest) -> Any:
        hub = _hub(request)
        try:
            caller.require("admin", "erasing a data subject")
            result = privacy_actions.erase(
                hub.database.engine,
                payload.criteria(),
                actor=actor_of(caller),
                reason=payload.reason,
                dry_run=payload.dry_run,
                outbox=hub.outbox,
            )
        except SalesHubError as exc:
            return error_response(exc)
        return {
            "dry_run": result.dry_run,
            "erasure_id": result.erasure_id,
            "erased_at": None if result.erased_at is None else result.erased_at.isoformat(),
            **result.subject.summary(),
            "order_list": [
                {
                    "system": o.source_system,
                    "external_order_id": o.external_order_id,
                    "hub_order_id": str(o.hub_order_id),
                    "status": o.status,
                    "already_erased": o.erased_at is not None,
                    "found_by": result.subject.matched.get(o.hub_order_id, []),
                    "linked_customer": result.subject.linked_customer.get(o.hub_order_id),
                }
                for o in result.subject.orders
            ],
        }

    @router.post("/privacy/exports", summary="Everything the hub holds about a data subject (admin)")
    def export(request: Request, caller: Caller, payload: ExportRequest) -> Any:
        hub = _hub(request)
        try:
            caller.require("admin", "exporting a data subject's data")
            return privacy_actions.export(
                hub.database.engine, payload.criteria(), actor=actor_of(caller), reason=payload.reason
            )
        except SalesHubError as exc:
            return error_response(exc)

    return router
