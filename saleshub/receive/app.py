"""The ASGI application: ``POST /webhooks/{system}``, ``GET /health/live``, ``GET /health/ready``.

``GET /docs`` is the Swagger UI of the contract, served with the UI's files from the
``swagger-ui-bundle`` package (``/docs/assets``), so it works without Internet access; there is
no ReDoc page (it would load its script from a CDN).

The webhook logic lives in ``saleshub.receive.webhooks``. Trailing slashes are not redirected: a 307
would make a sender re-POST elsewhere, so ``/webhooks/pyxis/`` is simply a 404.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from swagger_ui_bundle import swagger_ui_path

from adapters.registry import AdapterRegistry
from saleshub.platform.settings import Settings
from saleshub.platform.worker_board import WorkerBoard
from saleshub.receive.batching import GroupCommit
from saleshub.receive.openapi import WEBHOOK_RESPONSES, install_openapi, webhook_openapi
from saleshub.receive.responses import EventReceipt, Health, Readiness
from saleshub.receive.webhooks import problem, receive, refused
from saleshub.runtime import HubRuntime
from saleshub.store.migrate import current_revision, head_revision, is_newer_than_head

__all__ = ["create_app", "readiness_of"]

log = logging.getLogger(__name__)


def create_app(
    runtime: HubRuntime | None = None, settings: Settings | None = None, workers: WorkerBoard | None = None
) -> FastAPI:
    """The application; opens its own runtime from ``settings`` at start-up when none is given.

    ``workers`` is the supervisor's board when this is one of several worker processes: readiness
    reports it, and fails while workers keep being replaced.
    """
    state: dict[str, HubRuntime] = {}
    writers: dict[str, GroupCommit] = {}

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        hub: HubRuntime = (
            runtime
            if runtime is not None
            else await run_in_threadpool(HubRuntime.open, settings or Settings())
        )
        if runtime is None:  # a web worker process of its own: it follows deployments too
            hub.follow_mappings("web")
        writer = GroupCommit(hub.recorder)
        writer.start()
        state["runtime"], writers["writer"] = hub, writer
        application.state.runtime = hub  # the console's routes (``saleshub.console``) act through it
        try:
            yield
        finally:
            await run_in_threadpool(writer.stop)
            if runtime is None:
                await run_in_threadpool(hub.close)

    app = FastAPI(
        title="Sales integration hub",
        version="1.0.0",
        description="Receives retail service orders from sales systems as signed webhooks.",
        redirect_slashes=False,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} – API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )

    install_openapi(app)

    @app.exception_handler(StarletteHTTPException)
    async def no_such_route(request: Request, exc: StarletteHTTPException) -> Response:
        # A sender's wrong webhook URL (a trailing slash, a path below a system) is answered like
        # every refused webhook: a problem document, and one log line.
        path = request.url.path
        if exc.status_code == 404 and path.startswith("/webhooks/"):
            system = path.removeprefix("/webhooks/").split("/", 1)[0] or "-"
            detail = f"no webhook endpoint at {path}: senders POST to /webhooks/{{system}}, no trailing slash"
            return refused(problem(404, "Not found", detail), system, "no such path")
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # A bug of the hub: a problem document, and the connection closed cleanly (the client is
        # told, instead of finding a reset on its next request). The trace is logged by the server.
        response = problem(500, "Internal error", "the hub failed to handle this request; it is logged")
        response.headers["Connection"] = "close"
        return response

    @app.post(
        "/webhooks/{system}",
        status_code=202,
        response_model=EventReceipt,
        responses=WEBHOOK_RESPONSES,
        openapi_extra=webhook_openapi(AdapterRegistry.default().classes()),
        summary="Receive one order event from a sales system",
    )
    async def receive_webhook(system: str, request: Request) -> JSONResponse:
        return await receive(state["runtime"], writers["writer"], system, request)

    @app.get("/health/live", response_model=Health, summary="Liveness: the process answers")
    async def live() -> Health:
        return Health()

    @app.get(
        "/health/ready",
        response_model=Readiness,
        responses={
            503: {
                "model": Readiness,
                "description": "database unavailable or not migrated, secret store unavailable, or "
                "web workers in a restart loop",
            }
        },
        summary="Readiness: the database answers and is migrated, the secret store serves secrets",
    )
    async def ready() -> JSONResponse:
        hub = state["runtime"]

        readiness = await run_in_threadpool(readiness_of, hub, workers)
        return JSONResponse(readiness.model_dump(), status_code=200 if readiness.status == "ok" else 503)

    return app


def readiness_of(hub: HubRuntime, workers: WorkerBoard | None = None) -> Readiness:
    """Whether ``hub`` can do its work: the database answers and is migrated (to this release's
    schema or the next one's), the secret store serves, and the web workers (``workers``, when this
    is one of several) are not being replaced over and over.

    ``/health/ready`` of the web workers and of the worker commands' health port answer with it.
    """
    expected = head_revision()
    secrets = hub.secrets.health()
    secrets_state = "ok" if secrets.available else f"unavailable: {secrets.detail}"
    workers_state = workers.describe() if workers is not None else None
    try:
        revision = current_revision(hub.database.engine)  # a query: fails if unreachable
    except Exception as exc:  # any failure here means "not ready"; the reason is reported
        log.warning("readiness check failed: %s", exc)
        # Leased credentials the database refuses: the cause is the lease, not the server.
        leased = hub.secrets.leased_credentials("database/credentials")
        problem = leased.problem() if leased is not None else None
        return Readiness(
            status="unavailable",
            database=f"credentials refused: {problem}" if problem else "unreachable",
            schema_revision=None,
            expected_revision=expected,
            secrets=secrets_state,
            workers=workers_state,
        )
    # A schema migrated by the next release is compatible with this one (see is_newer_than_head).
    status = "ok" if revision == expected or is_newer_than_head(revision) else "not migrated"
    if not secrets.available or (workers is not None and workers.restart_loop):
        status = "unavailable"
    return Readiness(
        status=status,
        database="ok",
        schema_revision=revision,
        expected_revision=expected,
        secrets=secrets_state,
        mapping_revision=hub.mappings.revision,
        process=hub.follower.process if hub.follower is not None else None,
        workers=workers_state,
    )
