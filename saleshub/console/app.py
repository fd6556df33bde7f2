"""The hub's HTTP application: the webhooks, plus the operator API and console when OIDC is set.

``create_hub_app`` builds the receiving application (``saleshub.receive.app``) and, when
``console.issuer`` and ``console.client_id`` are set, adds ``/api/v1`` (bearer JWTs), the
``/console`` pages (an OIDC session) and their security middleware. With no provider configured
neither exists (404): the console is never open; the webhooks work either way.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from saleshub.console.api import api_router, error_response
from saleshub.console.api_operations import operations_router
from saleshub.console.api_orders import orders_router
from saleshub.console.api_privacy import privacy_router
from saleshub.console.pages import pages_router
from saleshub.console.pages_mappings import mapping_pages_router
from saleshub.console.pages_orders import order_pages_router
from saleshub.console.pages_pollers import poller_pages_router
from saleshub.console.pages_privacy import privacy_pages_router
from saleshub.console.security import SecurityHeaders
from saleshub.errors import SalesHubError
from saleshub.platform.auth import AuthenticationError, ForbiddenError, TokenVerifier
from saleshub.platform.secrets import SecretStore, secret_store_from_settings
from saleshub.platform.settings import Settings
from saleshub.platform.worker_board import WorkerBoard
from saleshub.receive.app import create_app
from saleshub.runtime import HubRuntime

__all__ = ["CLIENT_SECRET", "SESSION_KEY_SECRET", "create_hub_app", "operator_routers"]

log = logging.getLogger(__name__)

#: The secret that signs console session cookies (shared by every web worker).
SESSION_KEY_SECRET = "console/session_key"
#: The console's client secret at the provider (unset: a public client, PKCE only).
CLIENT_SECRET = "console/client_secret"

_STATIC = Path(__file__).parent / "static"


def operator_routers() -> list[APIRouter]:
    """Every router of ``/api/v1`` (the application and its OpenAPI document include these)."""
    return [api_router(), orders_router(), operations_router(), privacy_router()]


def create_hub_app(
    runtime: HubRuntime | None = None, settings: Settings | None = None, workers: WorkerBoard | None = None
) -> FastAPI:
    """The application of ``saleshub serve``; see the module's description (``workers``: the
    supervisor's board when this is one of several worker processes)."""
    resolved = runtime.settings if runtime is not None else (settings or Settings())
    app = create_app(runtime, resolved, workers)
    console = resolved.console
    if not console.issuer or not console.client_id:
        log.info("console and operator API off: SALESHUB_CONSOLE__ISSUER/CLIENT_ID are not set")
        return app
    store = runtime.secrets if runtime is not None else secret_store_from_settings(resolved)
    app.state.token_verifier = TokenVerifier(console)
    app.state.client_secret = _secret(store, CLIENT_SECRET)
    session_key = _secret(store, SESSION_KEY_SECRET)
    if session_key is None:
        if resolved.web.workers > 1:
            log.warning("no %s secret: each web worker signs its own sessions", SESSION_KEY_SECRET)
        session_key = secrets.token_urlsafe(32)
    app.add_middleware(SecurityHeaders, form_targets=console.issuer)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_key,
        session_cookie="saleshub_console",
        max_age=console.session_minutes * 60,
        path="/console",
        same_site="lax",
        https_only=not console.insecure_cookies,
    )
    for router in operator_routers():
        app.include_router(router)
    app.include_router(pages_router(console))
    for pages in (
        order_pages_router(),
        mapping_pages_router(),
        poller_pages_router(),
        privacy_pages_router(),
    ):
        app.include_router(pages)
    app.mount("/console/static", StaticFiles(directory=_STATIC), name="console-static")

    @app.exception_handler(AuthenticationError)
    async def not_authenticated(request: Request, exc: AuthenticationError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(ForbiddenError)
    async def forbidden(request: Request, exc: ForbiddenError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(SalesHubError)
    async def refused(request: Request, exc: SalesHubError) -> JSONResponse:
        return error_response(exc)

    return app


def _secret(store: SecretStore, name: str) -> str | None:
    found = store.find(name)
    return found.get_secret_value() if found is not None else None
