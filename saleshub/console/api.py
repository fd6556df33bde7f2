"""The operator API, ``/api/v1``: the same actions as the command line, for scripts, with bearer JWTs.

Every request carries ``Authorization: Bearer <JWT>`` from the organisation's OIDC provider (see
``saleshub.platform.auth``); every state change checks the caller's role on the server and is
written to the operator-action audit trail by the action itself. Viewers see personal data masked.
Errors are problem documents: 400 a malformed request, 401 no valid token, 403 a role too low,
404 not found, 409 the object's state does not allow it, 422 mappings that do not load or pass
their golden samples.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from saleshub.actions import events as event_actions
from saleshub.actions import mappings as mapping_actions
from saleshub.actions import reconciliation as recon
from saleshub.actions.pollers import pause_poller, resume_poller
from saleshub.actions.status import hub_status
from saleshub.console.security import SANDBOXED_DOCUMENT_POLICY
from saleshub.errors import (
    GoldenSamplesError,
    InvalidRequestError,
    MappingLoadError,
    NotFoundError,
    SalesHubError,
    StateConflictError,
)
from saleshub.platform.auth import AuthenticationError, ForbiddenError, Principal, TokenVerifier
from saleshub.platform.masking import mask
from saleshub.receive.replay import ReplaySelection
from saleshub.receive.webhooks import problem
from saleshub.runtime import HubRuntime
from saleshub.store import queries
from saleshub.store.audit import Actor, list_actions
from saleshub.store.events import Status
from saleshub.store.failures import database_errors
from saleshub.store.polling import poller_states

__all__ = [
    "Caller",
    "CrosswalkRow",
    "DeployRequest",
    "DismissRequest",
    "ImpactRequest",
    "PreviewRequest",
    "ReplayRequest",
    "RollbackRequest",
    "actor_of",
    "api_router",
    "draft_catalog",
    "draft_impact",
    "error_response",
    "masked",
    "plain",
    "polled",
    "preview_input",
]


def actor_of(principal: Principal) -> Actor:
    """The audit trail's actor for an authenticated person."""
    return Actor(subject=principal.subject, name=principal.name)


def masked(value: Any, principal: Principal) -> Any:
    """``value`` as the person may see it: personal data masked for viewers."""
    if principal.sees_personal_data:
        return value
    return json.loads(mask(json.dumps(value, default=str, ensure_ascii=False)))


def error_response(exc: SalesHubError) -> JSONResponse:
    """The problem document of an action's error."""
    if isinstance(exc, AuthenticationError):
        response = problem(401, "Not authenticated", str(exc))
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    if isinstance(exc, ForbiddenError):
        return problem(403, "Forbidden", str(exc))
    if isinstance(exc, NotFoundError):
        return problem(404, "Not found", str(exc))
    if isinstance(exc, StateConflictError):
        return problem(409, "Conflict", str(exc))
    if isinstance(exc, MappingLoadError):
        issues = [f"{i.file}:{i.line or ''} {i.key or ''} {i.message}".strip() for i in exc.issues]
        return problem(422, "Mappings do not load", "; ".join(issues))
    if isinstance(exc, GoldenSamplesError):
        return problem(422, "Golden samples fail", str(exc))
    if isinstance(exc, InvalidRequestError):
        return problem(400, "Bad request", str(exc))
    return problem(503, "Unavailable", " ".join(str(exc).split()))


def _runtime(request: Request) -> HubRuntime:
    hub: HubRuntime = request.app.state.runtime
    return hub


def _bearer(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("send Authorization: Bearer <a JWT from the organisation's provider>")
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier.principal(token.strip())


#: The authenticated person of a request (a route parameter).
Caller = Annotated[Principal, Depends(_bearer)]


class DismissRequest(BaseModel):
    """Why an event is closed, or a poller paused."""

    reason: str = Field(min_length=1, description="kept with the object and in the audit trail")


class ReplayRequest(BaseModel):
    """Why an event is replayed (optional)."""

    reason: str | None = None


class DeployRequest(BaseModel):
    """The deploy message (shown in the history)."""

    message: str = Field(min_length=1)


class RollbackRequest(BaseModel):
    """The revision to restore and why."""

    revision: int = Field(ge=1)
    message: str | None = None


class CrosswalkRow(BaseModel):
    """One CSV row to append to a crosswalk of a draft."""

    crosswalk: str = Field(description="e.g. crosswalks/channels.csv")
    row: str = Field(description="the CSV row, with every column of the crosswalk")


class PreviewRequest(BaseModel):
    """Preview a recorded event (its raw body) or a body given here, with the draft."""

    event_id: uuid.UUID | None = None
    system: str | None = None
    body: str | None = None


class ImpactRequest(BaseModel):
    """Impact of the draft over a system's last N orders."""

    system: str
    last: int = Field(default=1000, ge=1, le=1_000_000)


def plain(value: Any) -> Any:
    """``value`` (dataclasses, dicts, lists, times, ids) as JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | uuid.UUID):
        return str(value)
    return value


def api_router() -> APIRouter:  # noqa: PLR0915 (one closure per route, registered here)
    """The ``/api/v1`` routes."""
    router = APIRouter(prefix="/api/v1", tags=["operator API"])

    def run(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except SalesHubError as exc:
            return error_response(exc)

    @router.get("/status", summary="How the hub stands (the figures of `saleshub status`)")
    def status(request: Request, caller: Caller) -> Any:
        hub = _runtime(request)

        def read() -> Any:
            with database_errors(), hub.database.engine.connect() as conn:
                now = hub_status(conn)
            return {
                "events_24h": [
                    {"system": s, "status": st, "count": n} for (s, st), n in sorted(now.counts.items())
                ],
                "open_problems": now.open_problems,
                "error_rates": [
                    {"system": system, "received": received, "rate": rate, "above_line": above}
                    for system, received, rate, above in now.error_rates()
                ],
                "error_rate_line": now.error_rate_line,
                "queued": now.queued,
                "outbox_pending": now.backlog.pending,
                "deployed_revision": now.deployed.revision if now.deployed else None,
                "processes": [plain(p) for p in now.running],
            }

        return run(read)

    @router.get("/events", summary="Events, newest first, filtered")
    def list_events(
        request: Request,
        caller: Caller,
        system: str | None = None,
        status: Status | None = None,
        since: datetime | None = None,
        before: Annotated[
            datetime | None, Query(description="received before: the last page's oldest")
        ] = None,
        open_only: Annotated[
            bool, Query(alias="open", description="only open quarantined or failed events (not replayed)")
        ] = False,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> Any:
        hub = _runtime(request)

        def read() -> Any:
            with database_errors(), hub.database.engine.connect() as conn:
                rows = queries.events(
                    conn,
                    system=system,
                    status=status.value if status else None,
                    since=since,
                    before=before,
                    open_only=open_only,
                    limit=limit,
                )
            return [
                {**plain(dict(row._mapping)), "first_error": event_actions.first_error(row.errors)}
                for row in rows
            ]

        return run(read)

    @router.get("/events/{event_id}", summary="One event: everything recorded, who acted on it last")
    def show_event(request: Request, caller: Caller, event_id: str) -> Any:
        hub = _runtime(request)

        def read() -> Any:
            with database_errors(), hub.database.engine.connect() as conn:
                row = queries.event(conn, event_actions.resolve_event_id(conn, event_id))
                if row is None:
                    raise NotFoundError(f"no event {event_id}")
                record = event_actions.event_record(conn, row)
            body = bytes(row.raw_body).decode("utf-8", "replace") if row.raw_body is not None else None
            return masked({**plain(record), "body": body}, caller)

        return run(read)

    @router.post("/events/{event_id}/dismiss", summary="Close an open quarantined/failed event (operator)")
    def dismiss(request: Request, caller: Caller, event_id: str, payload: DismissRequest) -> Any:
        hub = _runtime(request)

        def act() -> Any:
            caller.require("operator", "dismissing an event")
            with database_errors(), hub.database.engine.connect() as conn:
                resolved = event_actions.resolve_event_id(conn, event_id)
            was = event_actions.dismiss_event(hub.database.engine, resolved, payload.reason, actor_of(caller))
            return {"event_id": str(resolved), "was": was, "status": "dismissed"}

        return run(act)

    @router.post(
        "/events/{event_id}/replay", summary="Map an event again with the deployed mappings (operator)"
    )
    def replay(
        request: Request,
        caller: Caller,
        event_id: str,
        payload: Annotated[ReplayRequest | None, Body()] = None,
    ) -> Any:
        hub = _runtime(request)

        def act() -> Any:
            caller.require("operator", "replaying an event")
            with database_errors(), hub.database.engine.connect() as conn:
                resolved = event_actions.resolve_event_id(conn, event_id)
            selection = ReplaySelection(event_id=resolved, open_only=False)
            summary = event_actions.replay_events(
                hub, selection, actor_of(caller), reason=payload.reason if payload else None
            )
            return {"selected": summary.selected, "statuses": dict(summary.statuses)}

        return run(act)

    @router.get("/mappings/history", summary="Deployed revisions, newest first, with who deployed each")
    def history(request: Request, caller: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> Any:
        hub = _runtime(request)

        def read() -> Any:
            with database_errors(), hub.database.engine.connect() as conn:
                found = mapping_actions.history(conn, limit)
            return [
                {
                    **plain(dataclasses.replace(revision, files={})),
                    "deployed_by": acted.name if acted else None,
                    "deployed_by_subject": acted.subject if acted else None,
                }
                for revision, acted in found
            ]

        return run(read)

    @router.get("/mappings/diff", summary="What changed between two revisions, field by field")
    def diff(request: Request, caller: Caller, old: str, new: str) -> Any:
        hub = _runtime(request)

        def read() -> Any:
            engine = hub.database.engine
            before = mapping_actions.revision_files(engine, mapping_actions.parse_revision(old))
            after = mapping_actions.revision_files(engine, mapping_actions.parse_revision(new))
            return [plain(change) for change in mapping_actions.diff(before, after)]

        return run(read)

    @router.post("/mappings/rollback", summary="Deploy an earlier revision's files again (steward)")
    def rollback(request: Request, caller: Caller, payload: RollbackRequest) -> Any:
        hub = _runtime(request)

        def act() -> Any:
            caller.require("steward", "rolling back the mappings")
            number = mapping_actions.rollback_to(
                hub.database.engine, payload.revision, payload.message, actor_of(caller)
            )
            return {"revision": number}

        return run(act)

    @router.post(
        "/mappings/drafts", status_code=201, summary="Start a draft from the deployed revision (steward)"
    )
    def start_draft(request: Request, caller: Caller) -> Any:
        hub = _runtime(request)

        def act() -> Any:
            caller.require("steward", "drafting mappings")
            return {
                "draft_id": str(
                    mapping_actions.start_draft(
                        hub.database.engine, actor_of(caller), hub.settings.mappings_dir
                    )
                )
            }

        return run(act)

    @router.post(
        "/mappings/drafts/{draft_id}/crosswalk-rows", summary="Add a crosswalk row to a draft (steward)"
    )
    def add_row(request: Request, caller: Caller, draft_id: uuid.UUID, payload: CrosswalkRow) -> Any:
        hub = _runtime(request)

        def act() -> Any:
            caller.require("steward", "editing a draft")
            mapping_actions.add_crosswalk_row(
                hub.database.engine, draft_id, payload.crosswalk, payload.row, actor_of(caller)
            )
            return {"draft_id": str(draft_id)}

        return run(act)

    @router.post("/mappings/drafts/{draft_id}/validate", summary="Load and compile a draft's files (steward)")
    def validate(request: Request, caller: Caller, draft_id: uuid.UUID) -> Any:
        hub = _runtime(request)

        def act() -> Any:
            caller.require("steward", "validating a draft")
            catalog = draft_catalog(hub, draft_id)
            return {"mappings": [m.identity.label for m in catalog]}

        return run(act)

    @router.post(
        "/mappings/drafts/{draft_id}/preview", summary="What an event becomes with a draft (steward)"
    )
    def preview(request: Request, caller: Caller, draft_id: uuid.UUID, payload: PreviewRequest) -> Any:
        hub = _runtime(request)

        def act() -> Any:
            caller.require("steward", "previewing a draft")
            system, body = preview_input(hub, payload.event_id, payload.system, payload.body)
            found = mapping_actions.preview(
                draft_catalog(hub, draft_id), system, body, hub.settings.web.max_body_bytes
            )
            return masked(plain(found), caller)

        return run(act)

    @router.post("/mappings/drafts/{draft_id}/impact", summary="Orders a draft would change (steward)")
    def impact(request: Request, caller: Caller, draft_id: uuid.UUID, payload: ImpactRequest) -> Any:
        hub = _runtime(request)

        def act() -> Any:
            caller.require("steward", "measuring a draft's impact")
            report = draft_impact(hub, draft_id, payload.system, payload.last)
            return masked(plain(report), caller)

        return run(act)

    @router.post("/mappings/drafts/{draft_id}/deploy", summary="Check and deploy a draft (steward)")
    def deploy(request: Request, caller: Caller, draft_id: uuid.UUID, payload: DeployRequest) -> Any:
        hub = _runtime(request)

        def act() -> Any:
            caller.require("steward", "deploying mappings")
            result = mapping_actions.deploy_draft(
                hub.database.engine, draft_id, hub.settings.samples_dir, payload.message, actor_of(caller)
            )
            return {"revision": result.revision, "deployed_by": caller.name}

        return run(act)

    @router.get("/pollers", summary="Each polled system's state: last success, failures, pause")
    def pollers(request: Request, caller: Caller) -> Any:
        hub = _runtime(request)

        def read() -> Any:
            with database_errors(), hub.database.engine.connect() as conn:
                states = poller_states(conn)
            return {system: plain(state) for system, state in states.items()}

        return run(read)

    @router.post("/pollers/{system}/pause", summary="Stop a system's scheduled polling (operator)")
    def pause(request: Request, caller: Caller, system: str, payload: DismissRequest) -> Any:
        hub = _runtime(request)

        def act() -> Any:
            caller.require("operator", "pausing a poller")
            polled(hub, system)
            pause_poller(hub.database.engine, system, payload.reason, actor_of(caller))
            return {"system": system, "paused": True}

        return run(act)

    @router.post("/pollers/{system}/resume", summary="Restart a system's scheduled polling (operator)")
    def resume(request: Request, caller: Caller, system: str) -> Any:
        hub = _runtime(request)

        def act() -> Any:
            caller.require("operator", "resuming a poller")
            polled(hub, system)
            resume_poller(hub.database.engine, system, actor_of(caller))
            return {"system": system, "paused": False}

        return run(act)

    @router.get("/reconciliation/runs", summary="The newest reconciliation runs with their counts")
    def reconciliation_runs(
        request: Request,
        caller: Caller,
        system: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    ) -> Any:
        hub = _runtime(request)

        def read() -> Any:
            with database_errors(), hub.database.engine.connect() as conn:
                return [plain(run) for run in recon.list_runs(conn, system=system, limit=limit)]

        return run(read)

    @router.get(
        "/reconciliation/runs/{run_id}/report",
        summary="A run's report: JSON, CSV or a self-contained HTML page (personal data masked)",
    )
    def reconciliation_report(
        request: Request, caller: Caller, run_id: uuid.UUID, format: str = "json"
    ) -> Any:
        hub = _runtime(request)

        def read() -> Any:
            with database_errors(), hub.database.engine.connect() as conn:
                rendered = recon.run_report(conn, run_id, format)
            media = {"json": "application/json", "csv": "text/csv", "html": "text/html"}[format]
            # The HTML report is one self-contained page with inline styles: served sandboxed.
            sandboxed = {"content-security-policy": SANDBOXED_DOCUMENT_POLICY} if format == "html" else {}
            return Response(rendered, media_type=f"{media}; charset=utf-8", headers=sandboxed)

        return run(read)

    @router.get("/reconciliation/compare", summary="What is new in run b, what was resolved since run a")
    def reconciliation_compare(request: Request, caller: Caller, a: uuid.UUID, b: uuid.UUID) -> Any:
        hub = _runtime(request)

        def read() -> Any:
            with database_errors(), hub.database.engine.connect() as conn:
                return plain(recon.compare_runs(conn, a, b))

        return run(read)

    @router.get("/audit", summary="Operator actions, newest first (keyset pages: before=<action_id>)")
    def audit(
        request: Request,
        caller: Caller,
        before: int | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> Any:
        hub = _runtime(request)

        def read() -> Any:
            with database_errors(), hub.database.engine.connect() as conn:
                return [plain(entry) for entry in list_actions(conn, limit=limit, before=before)]

        return run(read)

    return router


def polled(hub: HubRuntime, system: str) -> None:
    """``NotFoundError`` unless ``system`` is a polled system of the settings."""
    if system not in hub.settings.pollers.systems:
        known = ", ".join(sorted(hub.settings.pollers.systems)) or "none"
        raise NotFoundError(f"{system} is not a polled system (SALESHUB_POLLERS__SYSTEMS: {known})")


def draft_catalog(hub: HubRuntime, draft_id: uuid.UUID) -> Any:
    """A draft's files compiled (``MappingLoadError`` lists every problem)."""
    with database_errors(), hub.database.engine.connect() as conn:
        draft = mapping_actions.draft_of(conn, draft_id)
    return mapping_actions.validate_files(draft.files)


def preview_input(
    hub: HubRuntime, event_id: uuid.UUID | None, system: str | None, body: str | None
) -> tuple[str, bytes]:
    """The system and raw body to preview: a recorded event's, or the given ones."""
    if event_id is not None:
        with database_errors(), hub.database.engine.connect() as conn:
            row = queries.event(conn, event_id)
        if row is None:
            raise NotFoundError(f"no event {event_id}")
        if row.raw_body is None:
            raise StateConflictError(
                f"event {event_id} has no raw body (a replay, purged by retention, or its subject erased)"
            )
        return str(row.source_system), bytes(row.raw_body)
    if system is None or body is None:
        raise InvalidRequestError("give an event_id, or a system and a body")
    return system, body.encode("utf-8")


def draft_impact(hub: HubRuntime, draft_id: uuid.UUID, system: str, last: int) -> Any:
    """The impact report of a draft against the deployed mappings."""
    candidate = draft_catalog(hub, draft_id)
    with database_errors(), hub.database.engine.connect() as conn:
        return mapping_actions.impact(
            conn, hub.mappings.catalog, candidate, system, last, hub.settings.web.max_body_bytes
        )
