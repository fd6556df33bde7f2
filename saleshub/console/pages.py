"""The console's pages (``/console``): server-rendered with Jinja2, every asset served by the hub.

One flow for a quarantined order: the event page says why it failed, field by field, with the raw
body; a steward starts a draft from it, adds the missing crosswalk row, sees what the event becomes
with the draft and what the draft changes over the system's last orders, deploys it with a message,
and replays the event. Operators replay and dismiss; viewers read, with personal data masked. Every
form posts the session's CSRF token; the role is checked again on the server for every change.
"""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime
from typing import Any

from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from saleshub.actions import events as event_actions
from saleshub.actions import mappings as mapping_actions
from saleshub.actions import reconciliation as recon
from saleshub.actions.pollers import poller_overview
from saleshub.actions.status import hub_status
from saleshub.console.api import actor_of, draft_impact, preview_input
from saleshub.console.rendering import (
    TEMPLATES,
    acting,
    failure,
    page,
    runtime_of,
    shown,
    shown_json,
    to_login,
    who,
)
from saleshub.console.security import SANDBOXED_DOCUMENT_POLICY, check_csrf, start_session
from saleshub.errors import NotFoundError, SalesHubError
from saleshub.mapping.revision import MappingFiles
from saleshub.platform.auth import principal_from_claims
from saleshub.platform.settings import ConsoleSettings
from saleshub.receive.replay import ReplaySelection
from saleshub.stewards.deployment import load_deployed
from saleshub.store import queries
from saleshub.store.audit import list_actions
from saleshub.store.failures import database_errors

__all__ = ["pages_router"]


def pages_router(settings: ConsoleSettings) -> APIRouter:  # noqa: PLR0915 (one closure per route)
    """The ``/console`` routes for ``settings``' provider."""
    router = APIRouter(prefix="/console", include_in_schema=False)
    oauth = OAuth()
    registered: dict[str, Any] = {}

    def client(request: Request) -> Any:
        if "client" not in registered:
            secret = request.app.state.client_secret
            registered["client"] = oauth.register(
                name="hub",
                client_id=settings.client_id,
                client_secret=secret,
                server_metadata_url=f"{(settings.issuer or '').rstrip('/')}/.well-known/openid-configuration",
                client_kwargs={
                    "scope": "openid profile email",
                    "code_challenge_method": "S256",
                    "token_endpoint_auth_method": "client_secret_basic" if secret else "none",
                },
            )
        return registered["client"]

    @router.get("/login")
    async def login(request: Request) -> Response:
        base = settings.public_url.rstrip("/") if settings.public_url else str(request.base_url).rstrip("/")
        redirect: Response = await client(request).authorize_redirect(request, f"{base}/console/callback")
        return redirect

    @router.get("/callback")
    async def callback(request: Request) -> Response:
        try:
            token = await client(request).authorize_access_token(request)
        except OAuthError as exc:  # a refused code, a wrong client secret, a replayed state
            return HTMLResponse(
                f"<!doctype html><title>Login refused</title><p>The provider refused the login: "
                f"{html.escape(str(exc))}</p>",
                status_code=403,
            )
        claims = dict(token.get("userinfo") or {})
        verifier = request.app.state.token_verifier
        verified = await run_in_threadpool(verifier.verify, token["id_token"])
        claims.update(verified)
        try:
            principal = principal_from_claims(claims, settings)
        except SalesHubError as exc:
            return HTMLResponse(
                f"<!doctype html><title>Refused</title><p>{html.escape(str(exc))}</p>", status_code=403
            )
        start_session(request, principal, settings.session_minutes)
        return RedirectResponse("/console/", status_code=303)

    @router.post("/logout")
    async def logout(request: Request, csrf: str = Form("")) -> Response:
        check_csrf(request, csrf)
        request.session.clear()
        metadata = await client(request).load_server_metadata()
        end = metadata.get("end_session_endpoint")
        return RedirectResponse(end or "/console/logged-out", status_code=303)

    @router.get("/logged-out")
    async def logged_out(request: Request) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, "logged_out.html", {})

    @router.get("/")
    def dashboard(request: Request) -> Response:
        me = who(request)
        if me is None:
            return to_login()
        hub = runtime_of(request)
        with database_errors(), hub.database.engine.connect() as conn:
            now = hub_status(conn)
            pollers = poller_overview(conn, list(hub.settings.pollers.systems))
            last_runs = recon.list_runs(conn, limit=1)
        return page(
            request,
            "dashboard.html",
            me,
            status=now,
            pollers=pollers,
            last_reconciliation=last_runs[0] if last_runs else None,
            moment=datetime.now(UTC),
            active="dashboard",
        )

    @router.get("/events")
    def events(
        request: Request,
        status: str = "quarantined",
        system: str | None = None,
        before: datetime | None = None,
    ) -> Response:
        me = who(request)
        if me is None:
            return to_login()
        with database_errors(), runtime_of(request).database.engine.connect() as conn:
            if status == "open":  # the quarantine: what still needs a person
                rows = queries.events(conn, open_only=True, system=system, before=before, limit=100)
            else:
                rows = queries.events(conn, status=status or None, system=system, before=before, limit=100)
        return page(
            request,
            "events.html",
            me,
            rows=rows,
            status=status,
            first_error=event_actions.first_error,
            active="events",
        )

    @router.get("/events/{event_id}")
    def event(request: Request, event_id: uuid.UUID) -> Response:
        me = who(request)
        if me is None:
            return to_login()
        with database_errors(), runtime_of(request).database.engine.connect() as conn:
            row = queries.event(conn, event_id)
            if row is None:
                return failure(request, me, NotFoundError(f"no event {event_id}"))
            record = event_actions.event_record(conn, row)
        body = bytes(row.raw_body).decode("utf-8", "replace") if row.raw_body is not None else None
        return page(
            request,
            "event.html",
            me,
            row=row,
            record=record,
            body=shown(me, body) if body is not None else None,
            errors=(row.errors or {}).get("fields") or [],
            message=shown(me, str((row.errors or {}).get("message", ""))),
            active="events",
        )

    @router.post("/events/{event_id}/dismiss")
    def dismiss(
        request: Request, event_id: uuid.UUID, reason: str = Form(""), csrf: str = Form("")
    ) -> Response:
        me = acting(request, csrf, "operator", "dismissing an event")
        if isinstance(me, RedirectResponse):
            return me
        try:
            event_actions.dismiss_event(runtime_of(request).database.engine, event_id, reason, actor_of(me))
        except SalesHubError as exc:
            return failure(request, me, exc, 409)
        return RedirectResponse(f"/console/events/{event_id}", status_code=303)

    @router.post("/events/{event_id}/replay")
    def replay(request: Request, event_id: uuid.UUID, csrf: str = Form("")) -> Response:
        me = acting(request, csrf, "operator", "replaying an event")
        if isinstance(me, RedirectResponse):
            return me
        hub = runtime_of(request)
        summary = event_actions.replay_events(
            hub, ReplaySelection(event_id=event_id, open_only=False), actor_of(me)
        )
        with database_errors(), hub.database.engine.connect() as conn:
            row = queries.event(conn, event_id)
        target = f"/console/events/{row.superseded_by}" if row is not None and row.superseded_by else None
        return RedirectResponse(
            target or f"/console/events/{event_id}?replayed={summary.replayed}", status_code=303
        )

    @router.post("/drafts")
    def new_draft(request: Request, event: str = Form(""), csrf: str = Form("")) -> Response:
        me = acting(request, csrf, "steward", "drafting mappings")
        if isinstance(me, RedirectResponse):
            return me
        hub = runtime_of(request)
        draft_id = mapping_actions.start_draft(hub.database.engine, actor_of(me), hub.settings.mappings_dir)
        suffix = f"?event={uuid.UUID(event)}" if event else ""
        return RedirectResponse(f"/console/drafts/{draft_id}{suffix}", status_code=303)

    @router.get("/drafts/{draft_id}")
    def draft(
        request: Request,
        draft_id: uuid.UUID,
        event: uuid.UUID | None = None,
        last: int = 200,
        goldens: bool = False,
        file: str | None = None,
    ) -> Response:
        me = who(request)
        if me is None:
            return to_login()
        me.require("steward", "drafting mappings")
        hub = runtime_of(request)
        with database_errors(), hub.database.engine.connect() as conn:
            found = mapping_actions.draft_of(conn, draft_id)
        if found.base_revision is not None:
            base = mapping_actions.revision_files(hub.database.engine, found.base_revision)
        else:
            base = MappingFiles.read(hub.settings.mappings_dir).files
        changes = mapping_actions.diff(base, found.files)
        preview = impact = problem = None
        system = None
        try:
            if event is not None:
                system, body = preview_input(hub, event, None, None)
                catalog = mapping_actions.validate_files(found.files)
                preview = mapping_actions.preview(catalog, system, body, hub.settings.web.max_body_bytes)
                impact = draft_impact(hub, draft_id, system, max(1, min(last, 100_000)))
        except SalesHubError as exc:
            problem = str(exc)
        results = None
        if goldens:  # what a deploy of the draft would check
            try:
                results = mapping_actions.draft_goldens(
                    hub.database.engine, draft_id, hub.settings.samples_dir
                )
            except SalesHubError as exc:
                problem = str(exc)
        crosswalks = sorted(path for path in found.files if path.startswith("crosswalks/"))
        return page(
            request,
            "draft.html",
            me,
            draft=found,
            event=event,
            system=system,
            changes=changes,
            preview=preview,
            preview_json=shown_json(me, preview.result) if preview is not None and preview.result else None,
            impact=impact,
            problem=problem,
            goldens=results,
            crosswalks=crosswalks,
            editing=file if file in found.files else None,
            active="mappings",
        )

    @router.post("/drafts/{draft_id}/rows")
    def add_row(
        request: Request,
        draft_id: uuid.UUID,
        crosswalk: str = Form(...),
        row: str = Form(...),
        event: str = Form(""),
        csrf: str = Form(""),
    ) -> Response:
        me = acting(request, csrf, "steward", "editing a draft")
        if isinstance(me, RedirectResponse):
            return me
        try:
            mapping_actions.add_crosswalk_row(
                runtime_of(request).database.engine, draft_id, crosswalk, row, actor_of(me)
            )
        except SalesHubError as exc:
            return failure(request, me, exc)
        suffix = f"?event={uuid.UUID(event)}" if event else ""
        return RedirectResponse(f"/console/drafts/{draft_id}{suffix}", status_code=303)

    @router.post("/drafts/{draft_id}/files")
    def edit_file(
        request: Request,
        draft_id: uuid.UUID,
        path: str = Form(...),
        text: str = Form(...),
        event: str = Form(""),
        csrf: str = Form(""),
    ) -> Response:
        me = acting(request, csrf, "steward", "editing a draft")
        if isinstance(me, RedirectResponse):
            return me
        # Browsers post text areas with CRLF line ends; the files keep LF.
        edited = text.replace("\r\n", "\n")
        try:
            mapping_actions.edit_draft_file(
                runtime_of(request).database.engine, draft_id, path, edited, actor_of(me)
            )
        except SalesHubError as exc:
            return failure(request, me, exc)
        suffix = f"?event={uuid.UUID(event)}" if event else ""
        return RedirectResponse(f"/console/drafts/{draft_id}{suffix}", status_code=303)

    @router.post("/drafts/{draft_id}/deploy")
    def deploy(
        request: Request,
        draft_id: uuid.UUID,
        message: str = Form(""),
        event: str = Form(""),
        csrf: str = Form(""),
    ) -> Response:
        me = acting(request, csrf, "steward", "deploying mappings")
        if isinstance(me, RedirectResponse):
            return me
        hub = runtime_of(request)
        try:
            result = mapping_actions.deploy_draft(
                hub.database.engine, draft_id, hub.settings.samples_dir, message, actor_of(me)
            )
        except SalesHubError as exc:
            return failure(request, me, exc, 422)
        if result.revision is not None:
            # This process maps with the new revision at once (the others follow within seconds),
            # so a replay right after the deploy uses it.
            deployed = load_deployed(hub.database.engine)
            if deployed is not None:
                hub.mappings.install(*deployed)
        target = f"/console/events/{uuid.UUID(event)}" if event else "/console/mappings"
        return RedirectResponse(f"{target}?deployed={result.revision}", status_code=303)

    @router.get("/reconciliation")
    def reconciliation(request: Request) -> Response:
        me = who(request)
        if me is None:
            return to_login()
        with database_errors(), runtime_of(request).database.engine.connect() as conn:
            runs = recon.list_runs(conn, limit=50)
        return page(request, "reconciliation.html", me, runs=runs, active="reconciliation")

    @router.get("/reconciliation/{run_id}")
    def reconciliation_report(request: Request, run_id: uuid.UUID) -> Response:
        me = who(request)
        if me is None:
            return to_login()
        try:
            with database_errors(), runtime_of(request).database.engine.connect() as conn:
                rendered = recon.run_report(conn, run_id, "html")
        except SalesHubError as exc:
            return failure(request, me, exc)
        # The report is one self-contained page with inline styles: served sandboxed.
        return HTMLResponse(rendered, headers={"content-security-policy": SANDBOXED_DOCUMENT_POLICY})

    @router.get("/audit")
    def audit(request: Request, before: int | None = None) -> Response:
        me = who(request)
        if me is None:
            return to_login()
        with database_errors(), runtime_of(request).database.engine.connect() as conn:
            entries = list_actions(conn, limit=100, before=before)
        return page(request, "audit.html", me, entries=entries, active="audit")

    return router
