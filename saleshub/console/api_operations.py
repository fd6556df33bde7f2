"""More of ``/api/v1``: pollers run now and backfilled in the background; a revision's files; a draft's
files, read and edited; a draft's golden samples.

The same conventions as ``saleshub.console.api``: bearer JWTs, the role checked on the server for
every state change, the action audited by the action layer, problem documents for errors.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from adapters.source import Window
from saleshub.actions import mappings as mapping_actions
from saleshub.actions import pollers as poller_actions
from saleshub.console.api import Caller, actor_of, error_response, plain, polled
from saleshub.errors import NotFoundError, SalesHubError
from saleshub.runtime import HubRuntime
from saleshub.stewards.goldens import CaseResult
from saleshub.store.failures import database_errors
from saleshub.store.mapping_revisions import deployed_revision

__all__ = [
    "BackfillRequest",
    "DraftFile",
    "RunRequest",
    "golden_json",
    "operations_router",
    "poller_json",
]


class DraftFile(BaseModel):
    """The new text of one file of a draft."""

    text: str = Field(description="the whole file (YAML mapping or CSV crosswalk)")


class RunRequest(BaseModel):
    """A run of the incremental feed now."""

    force: bool = Field(default=False, description="also when the poller is paused")


class BackfillRequest(BaseModel):
    """A window of source changes to read again, on the backfill cursor."""

    since: datetime = Field(description="first change time (ISO 8601)")
    until: datetime | None = Field(default=None, description="end of the window, excluded (default open)")


def poller_json(view: poller_actions.PollerView) -> dict[str, Any]:
    """One system of ``saleshub poll status`` as JSON."""
    return {
        "system": view.system,
        "state": plain(view.state),
        "cursor": plain(view.cursor),
        "backfill": plain(view.backfill),
        "lag_seconds": view.lag_seconds(),
        "running": view.running,
        "runs": [plain(run) for run in view.runs],
    }


def golden_json(results: list[CaseResult]) -> dict[str, Any]:
    """Golden sample results: counts, and every case with its differences."""
    failed = [r for r in results if not r.passed]
    return {
        "passed": len(results) - len(failed),
        "failed": len(failed),
        "cases": [
            {
                "system": r.case.system,
                "sample": r.case.payload.name,
                "passed": r.passed,
                "missing_expected": r.missing_expected,
                "differences": [plain(d) for d in r.differences],
            }
            for r in results
        ],
    }


def _hub(request: Request) -> HubRuntime:
    hub: HubRuntime = request.app.state.runtime
    return hub


def operations_router() -> APIRouter:  # noqa: PLR0915 (one closure per route)
    """The routes of this module, under ``/api/v1``."""
    router = APIRouter(prefix="/api/v1", tags=["operator API"])

    @router.get("/pollers/{system}", summary="One polled system as `saleshub poll status` shows it")
    def poller(request: Request, caller: Caller, system: str) -> Any:
        hub = _hub(request)
        try:
            with database_errors(), hub.database.engine.connect() as conn:
                views = poller_actions.poller_overview(conn, list(hub.settings.pollers.systems))
            found = [v for v in views if v.system == system]
            if not found:  # neither configured nor ever polled
                polled(hub, system)
            return poller_json(found[0])
        except SalesHubError as exc:
            return error_response(exc)

    @router.post(
        "/pollers/{system}/run",
        status_code=202,
        summary="Read a system's feed to its end now, in the background (operator)",
    )
    def run_now(
        request: Request,
        caller: Caller,
        system: str,
        payload: Annotated[RunRequest | None, Body()] = None,
    ) -> Any:
        hub = _hub(request)
        force = payload.force if payload else False
        try:
            caller.require("operator", "running a poller")
            polled(hub, system)
            job = poller_actions.run_job(hub, system, actor_of(caller), force=force, started_by="api")
        except SalesHubError as exc:
            return error_response(exc)
        poller_actions.start_in_background(f"poll run {system}", job)
        return JSONResponse(
            {"system": system, "stream": "incremental", "follow": f"/api/v1/pollers/{system}"}, 202
        )

    @router.post(
        "/pollers/{system}/backfill",
        status_code=202,
        summary="Read a window of a system's changes again, in the background (operator)",
    )
    def backfill(request: Request, caller: Caller, system: str, payload: BackfillRequest) -> Any:
        hub = _hub(request)
        try:
            caller.require("operator", "backfilling a poller")
            polled(hub, system)
            job = poller_actions.backfill_job(
                hub,
                system,
                Window(payload.since, payload.until),
                actor_of(caller),
                started_by="api",
            )
        except SalesHubError as exc:
            return error_response(exc)
        poller_actions.start_in_background(f"poll backfill {system}", job)
        return JSONResponse(
            {"system": system, "stream": "backfill", "follow": f"/api/v1/pollers/{system}"}, 202
        )

    @router.get(
        "/mappings/revisions/{revision}",
        summary="A stored revision's files (`current`: the deployed one), as `saleshub mappings` stores them",
    )
    def revision_files(request: Request, caller: Caller, revision: str) -> Any:
        hub = _hub(request)
        try:
            if revision == "current":
                with database_errors(), hub.database.engine.connect() as conn:
                    deployed = deployed_revision(conn)
                if deployed is None:
                    raise NotFoundError("no mapping revision is deployed yet")
                number = deployed.revision
            else:
                number = mapping_actions.parse_revision(revision)
            files = mapping_actions.revision_files(hub.database.engine, number)
        except SalesHubError as exc:
            return error_response(exc)
        return {"revision": number, "files": files}

    @router.get("/mappings/drafts/{draft_id}", summary="A draft's files as edited (steward)")
    def draft(request: Request, caller: Caller, draft_id: uuid.UUID) -> Any:
        hub = _hub(request)
        try:
            caller.require("steward", "reading a draft")
            with database_errors(), hub.database.engine.connect() as conn:
                found = mapping_actions.draft_of(conn, draft_id)
        except SalesHubError as exc:
            return error_response(exc)
        return plain(found)

    @router.put(
        "/mappings/drafts/{draft_id}/files/{path:path}",
        summary="Replace a mapping file of a draft, or add a crosswalk (steward)",
    )
    def edit_file(
        request: Request, caller: Caller, draft_id: uuid.UUID, path: str, payload: DraftFile
    ) -> Any:
        hub = _hub(request)
        try:
            caller.require("steward", "editing a draft")
            mapping_actions.edit_draft_file(
                hub.database.engine, draft_id, path, payload.text, actor_of(caller)
            )
        except SalesHubError as exc:
            return error_response(exc)
        return {"draft_id": str(draft_id), "file": path}

    @router.post(
        "/mappings/drafts/{draft_id}/tests",
        summary="Run the golden samples through a draft (steward): what a deploy would check",
    )
    def draft_tests(request: Request, caller: Caller, draft_id: uuid.UUID) -> Any:
        hub = _hub(request)
        try:
            caller.require("steward", "testing a draft")
            results = mapping_actions.draft_goldens(hub.database.engine, draft_id, hub.settings.samples_dir)
        except SalesHubError as exc:
            return error_response(exc)
        return golden_json(results)

    return router
