"""The console's pollers page: each polled system as ``saleshub poll status`` shows it (state, lag,
last runs, backfill position), and for operators pause, resume, run now and backfill a window; a run
or backfill goes on in the background through the function the command uses, audited.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from adapters.source import Window
from saleshub.actions import pollers as poller_actions
from saleshub.console.api import actor_of, polled
from saleshub.console.rendering import acting, failure, page, runtime_of, to_login, who
from saleshub.errors import InvalidRequestError, SalesHubError
from saleshub.store.failures import database_errors

__all__ = ["poller_pages_router"]


def _moment(text: str, name: str) -> datetime | None:
    if not text.strip():
        return None
    try:
        found = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequestError(f"{name} is a date or time like 2026-10-01 or 2026-10-01T06:00") from None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def poller_pages_router() -> APIRouter:
    """The ``/console/pollers`` routes."""
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/pollers")
    def pollers(request: Request, started: str | None = None) -> Response:
        me = who(request)
        if me is None:
            return to_login()
        hub = runtime_of(request)
        with database_errors(), hub.database.engine.connect() as conn:
            views = poller_actions.poller_overview(conn, list(hub.settings.pollers.systems))
        return page(
            request,
            "pollers.html",
            me,
            views=views,
            configured=hub.settings.pollers.systems,
            started=started,
            now=datetime.now(UTC),
            active="pollers",
        )

    @router.post("/pollers/{system}/pause")
    def pause(request: Request, system: str, reason: str = Form(""), csrf: str = Form("")) -> Response:
        me = acting(request, csrf, "operator", "pausing a poller")
        if isinstance(me, RedirectResponse):
            return me
        hub = runtime_of(request)
        try:
            polled(hub, system)
        except SalesHubError as exc:
            return failure(request, me, exc)
        reason = reason.strip() or "paused from the console"
        poller_actions.pause_poller(hub.database.engine, system, reason, actor_of(me))
        return RedirectResponse("/console/pollers", status_code=303)

    @router.post("/pollers/{system}/resume")
    def resume(request: Request, system: str, csrf: str = Form("")) -> Response:
        me = acting(request, csrf, "operator", "resuming a poller")
        if isinstance(me, RedirectResponse):
            return me
        hub = runtime_of(request)
        try:
            polled(hub, system)
        except SalesHubError as exc:
            return failure(request, me, exc)
        poller_actions.resume_poller(hub.database.engine, system, actor_of(me))
        return RedirectResponse("/console/pollers", status_code=303)

    @router.post("/pollers/{system}/run")
    def run_now(request: Request, system: str, csrf: str = Form("")) -> Response:
        me = acting(request, csrf, "operator", "running a poller")
        if isinstance(me, RedirectResponse):
            return me
        hub = runtime_of(request)
        try:
            polled(hub, system)
            job = poller_actions.run_job(hub, system, actor_of(me), started_by="console")
        except SalesHubError as exc:
            return failure(request, me, exc)
        poller_actions.start_in_background(f"poll run {system}", job)
        return RedirectResponse(f"/console/pollers?started={system}", status_code=303)

    @router.post("/pollers/{system}/backfill")
    def backfill(
        request: Request,
        system: str,
        since: str = Form(""),
        until: str = Form(""),
        csrf: str = Form(""),
    ) -> Response:
        me = acting(request, csrf, "operator", "backfilling a poller")
        if isinstance(me, RedirectResponse):
            return me
        hub = runtime_of(request)
        try:
            polled(hub, system)
            window = Window(_moment(since, "since"), _moment(until, "until"))
            job = poller_actions.backfill_job(hub, system, window, actor_of(me), started_by="console")
        except SalesHubError as exc:
            return failure(request, me, exc)
        poller_actions.start_in_background(f"poll backfill {system}", job)
        return RedirectResponse(f"/console/pollers?started={system}", status_code=303)

    return router
