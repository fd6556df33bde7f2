"""A loopback OIDC key publisher for the token tests: discovery and a JWKS the test changes.

``KeyPublisher`` serves ``/.well-known/openid-configuration`` and ``/jwks`` on a free loopback
port (the standard library's threading HTTP server), publishing ``keys`` as they are at each
request, so a test can rotate the provider's signing key mid-run; ``sign`` issues a token with one
of them. ``jwks_requests`` counts how often the key set was fetched.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey


class KeyPublisher:
    """Discovery and JWKS of an issuer whose keys a test controls."""

    def __init__(self) -> None:
        self.keys: list[RSAKey] = []
        self.jwks_requests = 0
        publisher = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body: dict[str, Any] = {
                        "issuer": publisher.issuer,
                        "jwks_uri": f"{publisher.issuer}/jwks",
                        "authorization_endpoint": f"{publisher.issuer}/authorize",
                        "token_endpoint": f"{publisher.issuer}/token",
                    }
                elif self.path == "/jwks":
                    publisher.jwks_requests += 1
                    body = {"keys": [key.as_dict(private=False) for key in publisher.keys]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def new_key(self, kid: str) -> RSAKey:
        """Generate and publish a signing key named ``kid``."""
        key = RSAKey.generate_key(2048, parameters={"kid": kid})
        self.keys.append(key)
        return key

    def sign(self, key: RSAKey, claims: dict[str, Any]) -> str:
        """A JWT of ``claims`` signed with ``key``."""
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)

    def __enter__(self) -> KeyPublisher:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
