"""Datadog's own APM test agent (PyPI ``ddapm-test-agent``) as a process on free loopback ports.

The hub's ddtrace sends its traces there exactly as to a real agent; ``traces()`` reads them back
through the test agent's ``/test/traces`` API (a list of traces, each a list of spans with
``trace_id``, ``span_id``, ``parent_id``, ``name``, ``resource``, ``meta`` and ``metrics``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["DatadogTestAgent"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DatadogTestAgent:
    """``ddapm-test-agent --port=…`` started and stopped around a test."""

    def __init__(self, log_dir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log_dir / "ddapm-test-agent.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DatadogTestAgent:
        executable = shutil.which("ddapm-test-agent") or str(Path(sys.executable).parent / "ddapm-test-agent")
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    executable,
                    f"--port={self.port}",
                    f"--otlp-http-port={_free_port()}",
                    f"--otlp-grpc-port={_free_port()}",
                    "--host=127.0.0.1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"ddapm-test-agent exited: {self._log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/info", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("ddapm-test-agent did not answer within 120 s")

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def traces(self) -> list[list[dict[str, Any]]]:
        """Every trace the agent received."""
        response = httpx.get(f"{self.url}/test/traces", timeout=10)
        response.raise_for_status()
        traces: list[list[dict[str, Any]]] = response.json()
        return traces

    def spans(self) -> list[dict[str, Any]]:
        """Every span the agent received, flattened."""
        return [span for trace in self.traces() for span in trace]
