"""The health port of the worker commands: ``/health/live`` and ``/health/ready`` without a web server.

``saleshub process``, ``saleshub kafka relay``, ``saleshub kafka consume`` and ``saleshub poll serve``
serve no HTTP of their own; with ``--health-port`` they answer the same two paths as ``saleshub
serve`` so an orchestrator can probe them: live is 200 while every background thread of the command
runs (503 once one has ended, so a stuck-dead worker is restarted), ready is ``serve``'s readiness
(database reachable and migrated, secret store serving).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated

import typer

from saleshub.runtime import HubRuntime
from saleshub.services import Services

__all__ = ["HealthPort", "HealthPortOption", "health_port"]

#: The ``--health-port`` option of every worker command.
HealthPortOption = Annotated[
    int | None,
    typer.Option("--health-port", min=1, max=65535, help="answer /health/live and /health/ready here"),
]

log = logging.getLogger(__name__)


class HealthPort(ThreadingHTTPServer):
    """A small HTTP server answering the two health paths for one command's hub and services."""

    daemon_threads = True

    def __init__(self, port: int, hub: HubRuntime, services: Services) -> None:
        self.hub = hub
        self.services = services
        super().__init__(("0.0.0.0", port), _Handler)  # probed by the kubelet from the node

    def live(self) -> tuple[int, dict[str, object]]:
        """200 while every thread of the command runs; 503 naming those that ended."""
        ended = [thread.name for thread in self.services.threads if not thread.is_alive()]
        if ended and not self.services.stop_event.is_set():
            return 503, {"status": "dead", "ended": ended}
        return 200, {"status": "ok"}

    def ready(self) -> tuple[int, dict[str, object]]:
        """``serve``'s readiness: the database answers and is migrated, the secret store serves."""
        from saleshub.receive.app import readiness_of  # the web stack only when probed

        readiness = readiness_of(self.hub)
        return (200 if readiness.status == "ok" else 503), readiness.model_dump()


class _Handler(BaseHTTPRequestHandler):
    server: HealthPort

    def do_GET(self) -> None:
        if self.path == "/health/live":
            code, body = self.server.live()
        elif self.path == "/health/ready":
            code, body = self.server.ready()
        else:
            code, body = 404, {"detail": "only /health/live and /health/ready are served here"}
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Probes every few seconds are noise: only at DEBUG."""
        log.debug("health port: " + format, *args)


@contextmanager
def health_port(port: int | None, hub: HubRuntime, services: Services) -> Iterator[None]:
    """Answer the health paths on ``port`` (none when ``None``) while the block runs."""
    if port is None:
        yield
        return
    server = HealthPort(port, hub, services)
    thread = threading.Thread(target=server.serve_forever, name="health-port", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
