"""A schema registry speaking the documented Confluent REST API subset the hub uses, for tests.

No registry server can be installed offline, so this is the nearest real thing: an HTTP server on
loopback answering ``POST /subjects/{subject}/versions`` (register, same schema → same id),
``GET /schemas/ids/{id}`` and ``GET /subjects``, with the registry's JSON shapes and content type.
The hub talks to it through ``confluent-kafka``'s own registry client, unchanged.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse

__all__ = ["SchemaRegistryServer"]

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class SchemaRegistryServer:
    """Registry state plus the HTTP server serving it in a thread."""

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                return

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", _CONTENT_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                parts = urlparse(self.path).path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
                    self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
                    return
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._send(200, {"id": registry.register(unquote(parts[1]), payload["schema"])})

            def do_GET(self) -> None:
                parts = urlparse(self.path).path.strip("/").split("/")
                if parts == ["subjects"]:
                    self._send(200, sorted(registry.subjects))
                elif (
                    len(parts) == 3 and parts[:2] == ["schemas", "ids"] and int(parts[2]) in registry.schemas
                ):
                    self._send(200, {"schema": registry.schemas[int(parts[2])]})
                else:
                    self._send(404, {"error_code": 40403, "message": "Schema not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def register(self, subject: str, schema: str) -> int:
        """The id of ``schema`` (canonicalised JSON), registering it under ``subject``."""
        canonical = json.dumps(json.loads(schema), sort_keys=True)
        with self.lock:
            ids = [i for i, known in self.schemas.items() if known == canonical]
            schema_id = ids[0] if ids else len(self.schemas) + 1
            self.schemas[schema_id] = canonical
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def __enter__(self) -> SchemaRegistryServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
