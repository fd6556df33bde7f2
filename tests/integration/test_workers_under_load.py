"""``saleshub serve --workers 2`` on a host whose CPUs are busy: every worker starts, none is replaced.

uvicorn's supervisor pings each worker process and replaces one that does not answer within its
health-check timeout. A worker that is still importing the web stack when the first ping comes must
answer anyway; otherwise, on a loaded host (a container with a CPU limit), workers are killed and
started again forever and none ever serves. Once ``serve`` says it starts its workers, busy loops
(four per CPU, each ending by itself) load the host; the test waits for both workers to answer, with
a generous deadline, and looks for any worker replacement in the log meanwhile. Nothing here depends on how
fast the host is: a slower host only makes the wait longer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.integration.conftest import SECRETS, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Lines the supervisor writes when it replaces a worker (uvicorn's own, and the hub's).
RESTARTED = ("Child process", "replaced")
BUSY_SECONDS = 180  # each busy loop ends by itself, even if the test is killed


@pytest.fixture
def busy_cpus() -> Iterator[Callable[[], None]]:
    """Start the busy loops when called; they are stopped after the test."""
    loop = f"import time\nend = time.monotonic() + {BUSY_SECONDS}\nwhile time.monotonic() < end:\n    pass\n"
    loops: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        loops.extend(subprocess.Popen([sys.executable, "-c", loop]) for _ in range(4 * (os.cpu_count() or 1)))

    try:
        yield start
    finally:
        for process in loops:
            process.kill()
            process.wait(30)


def ready_processes(port: int) -> tuple[int, str | None, dict[str, object]]:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10)
    except httpx.TransportError:
        return 0, None, {}
    body = answer.json()
    return answer.status_code, body.get("process"), body


def test_two_workers_start_on_a_busy_host_and_none_is_replaced(
    tmp_path: Path, busy_cpus: Callable[[], None]
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESHUB_")}
    env |= {**SECRETS, "SALESHUB_DATABASE__DATA_DIR": str(tmp_path / "data"), "SALESHUB_LOG_LEVEL": "INFO"}
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "saleshub", "serve", "--workers", "2", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    seen: set[str] = set()
    last: dict[str, object] = {}
    try:
        deadline = time.monotonic() + 600
        while "serving with 2 worker(s)" not in log_path.read_text():
            assert serve.poll() is None, f"serve exited with {serve.returncode}:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, "serve did not get to its workers"
            time.sleep(0.2)
        busy_cpus()
        while len(seen) < 2 and time.monotonic() < deadline:
            assert serve.poll() is None, f"serve exited with {serve.returncode}:\n{log_path.read_text()}"
            replaced = [
                line for line in log_path.read_text().splitlines() if any(w in line for w in RESTARTED)
            ]
            assert not replaced, "a worker was replaced while starting:\n" + "\n".join(replaced)
            status, process, last = ready_processes(port)
            if status == 200 and process:
                seen.add(process)
            else:
                time.sleep(0.5)
        assert len(seen) == 2, f"only {sorted(seen)} answered /health/ready; last answer {last}"
        assert last.get("workers") == "2 running, none replaced", last
        replaced = [line for line in log_path.read_text().splitlines() if any(w in line for w in RESTARTED)]
        assert not replaced, "a worker was replaced:\n" + "\n".join(replaced)
    finally:
        serve.terminate()
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(30)


def test_a_worker_that_stops_answering_is_replaced_and_readiness_says_so(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESHUB_")}
    env |= {
        **SECRETS,
        "SALESHUB_DATABASE__DATA_DIR": str(tmp_path / "data"),
        "SALESHUB_WEB__WORKER_TIMEOUT_SECONDS": "10",
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "saleshub", "serve", "--workers", "2", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        seen: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + 600
        while len(seen) < 2:
            assert serve.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"only {sorted(seen)} answered"
            status, process, body = ready_processes(port)
            if status == 200 and process:
                seen[process] = body
            time.sleep(0.2)
        frozen = int(sorted(seen)[0].rpartition(":")[2])
        os.kill(frozen, signal.SIGSTOP)  # alive, and answering nothing: the supervisor must replace it
        try:
            while "replaced" not in log_path.read_text():
                assert serve.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the frozen worker was never replaced"
                time.sleep(0.2)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(frozen, signal.SIGCONT)
        line = next(line for line in log_path.read_text().splitlines() if "replaced" in line)
        assert f"web worker [{frozen}] replaced by [" in line and "health check within 10 s" in line, line
        while True:
            assert time.monotonic() < deadline, "readiness never reported the replacement"
            status, _, body = ready_processes(port)
            if status == 200 and body.get("workers") != "2 running, none replaced":
                break
            time.sleep(0.2)
        assert str(body["workers"]).startswith("2 running, 1 replaced, the last "), body
    finally:
        serve.terminate()
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(30)
