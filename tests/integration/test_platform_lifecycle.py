"""The platform's defects, each through the real command line: stop signals, the embedded PostgreSQL's
lifecycle (stale process ids, a dead postmaster), worker hand-off, one-line start errors, and no
secret in any output.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from saleshub.errors import ConfigurationError
from saleshub.platform.secrets import FileSecretStore
from saleshub.services import build_consumers
from tests.conftest import ROOT
from tests.integration.conftest import SECRET, SECRETS, LiveServer, free_port, open_hub, processed, wait_until
from tests.support.synthetic import pyxis_event, signed_headers

pytestmark = pytest.mark.integration

CANARY = "canary-Zq81vX-do-not-leak"


def hub_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESHUB_")}
    return {**env, **SECRETS, "SALESHUB_DATABASE__DATA_DIR": str(data_dir), **extra}


def saleshub(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "saleshub", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def postmaster(data_dir: Path) -> psutil.Process | None:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return None
    try:
        process = psutil.Process(int(pid_file.read_text().split()[0]))
    except psutil.NoSuchProcess:
        return None
    return process if process.is_running() and process.status() != psutil.STATUS_ZOMBIE else None


def handles(data_dir: Path) -> list[int]:
    path = data_dir / "postgres" / ".handle_pids.json"
    return list(json.loads(path.read_text())) if path.exists() and path.read_text().strip() else []


def post(port: int, number: int) -> int:
    body = pyxis_event(number)
    headers = signed_headers(SECRET, f"msg_{number}_{time.monotonic_ns()}", body)
    try:
        return httpx.post(
            f"http://127.0.0.1:{port}/webhooks/pyxis", content=body, headers=headers, timeout=10
        ).status_code
    except httpx.TransportError:
        return 0


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    """``saleshub serve --workers 2`` on its own embedded PostgreSQL."""
    data_dir, port = tmp_path / "data", free_port()
    with (tmp_path / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "saleshub", "serve", "--workers", "2", "--port", str(port)],
            cwd=ROOT,
            env=hub_env(data_dir, SALESHUB_LOG_LEVEL="WARNING"),
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
    try:
        wait_until(lambda: process.poll() is not None or post(port, 0) == 202, 120, "serve answers webhooks")
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        yield process, port, data_dir
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        running = postmaster(data_dir)
        if running is not None:  # never leave a server behind, whatever the test found
            running.kill()


@pytest.mark.slow
def test_workers_recover_from_a_dead_postmaster_and_sigterm_stops_everything(
    serve: tuple[subprocess.Popen[str], int, Path],
) -> None:
    process, port, data_dir = serve
    # The workers got the resolved database URL in their configuration, not in their environment.
    workers = [
        child
        for child in psutil.Process(process.pid).children(recursive=True)
        if child.name().startswith("python")
    ]
    assert len(workers) >= 2
    for worker in workers:
        environ = worker.environ()
        assert "SALESHUB_DATABASE__URL" not in environ
        assert not any("postgresql" in value for value in environ.values())
    statuses = [post(port, number) for number in range(1, 9)]
    assert statuses == [202] * 8

    dead = postmaster(data_dir)
    assert dead is not None
    dead.kill()
    dead.wait(10)
    # The hub starts its embedded server again by itself; the pools reconnect.
    wait_until(lambda: post(port, 100) == 202, 60, "webhooks are accepted again after the postmaster died")
    restarted = postmaster(data_dir)
    assert restarted is not None and restarted.pid != dead.pid
    assert [post(port, number) for number in range(200, 206)] == [202] * 6

    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    wait_until(lambda: postmaster(data_dir) is None, 120, "the embedded PostgreSQL stopped")
    assert handles(data_dir) == []


def test_stale_process_ids_are_cleaned_and_one_shot_commands_release_the_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = saleshub("db", "upgrade", env=hub_env(data_dir))
    assert first.returncode == 0, first.stderr
    assert postmaster(data_dir) is None, "a one-shot command left the embedded PostgreSQL running"
    # A process SIGKILLed while holding the server left its id behind: a pid that no longer exists.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (data_dir / "postgres" / ".handle_pids.json").write_text(json.dumps([gone.pid]))
    status = saleshub("status", env=hub_env(data_dir))
    assert status.returncode == 0, status.stderr
    assert postmaster(data_dir) is None, "a stale process id kept the embedded PostgreSQL running"
    assert handles(data_dir) == []


def test_sigterm_on_a_one_shot_command_releases_the_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert saleshub("db", "upgrade", env=hub_env(data_dir)).returncode == 0
    # `events replay` over nothing is quick; `mappings impact` keeps the server while it maps. A
    # command is stopped while it holds the server: the server must stop with it.
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time, sys; sys.argv=['saleshub','status'];"
            "from saleshub.store.database import open_database; from saleshub.platform.settings import Settings;"
            "from saleshub.commands.common import install_stop_handlers; install_stop_handlers();"
            "db = open_database(Settings()); print('open', flush=True);\n"
            "try:\n    time.sleep(60)\nfinally:\n    db.close()",
        ],
        cwd=ROOT,
        env=hub_env(data_dir),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "open"
    assert postmaster(data_dir) is not None
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 128 + signal.SIGTERM
    process.stdout.close()
    assert postmaster(data_dir) is None
    assert handles(data_dir) == []


def test_serve_with_an_unreachable_database_says_so_in_one_line(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://hub@127.0.0.1:{free_port()}/hub?connect_timeout=2"
    result = saleshub("serve", env=hub_env(tmp_path, SALESHUB_DATABASE__URL=url))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: the database is unavailable") and "Traceback" not in result.stderr


def test_preview_of_a_missing_file_says_so_in_one_line(tmp_path: Path) -> None:
    result = saleshub("mappings", "preview", "pyxis", str(tmp_path / "nope.json"), env=hub_env(tmp_path))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: cannot read {tmp_path / 'nope.json'}: No such file or directory"], result.stderr


def test_no_canary_secret_in_the_output_of_status(db_url: str, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(
        f"webhook:\n  pyxis: [{SECRET}]\nkafka:\n  sasl: {{username: hub, password: {CANARY}}}\n"
        f"database:\n  credentials: {{username: postgres, password: {CANARY}}}\n",
        encoding="utf-8",
    )
    env = hub_env(
        tmp_path,
        SALESHUB_DATABASE__URL=db_url,
        SALESHUB_LOG_LEVEL="DEBUG",
        SALESHUB_SECRETS__BACKEND="file",
        SALESHUB_SECRETS__FILE=str(secrets),
        SALESHUB_KAFKA__CLIENT_CONFIG=json.dumps({"sasl.password": CANARY, "security.protocol": "PLAINTEXT"}),
    )
    result = saleshub("status", env=env)
    assert result.returncode == 0, result.stderr  # the embedded server trusts local users: any password
    assert CANARY not in result.stdout + result.stderr
    secrets.write_text(f"webhook:\n  pyxis: [{CANARY}\n", encoding="utf-8")  # broken YAML
    broken = saleshub("status", env=env)
    assert broken.returncode == 1 and "not valid YAML at line" in broken.stderr
    assert CANARY not in broken.stdout + broken.stderr


def test_a_secret_store_failure_during_a_request_answers_503_and_logs(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(f"webhook:\n  pyxis: [{SECRET}]\n", encoding="utf-8")
    hub = open_hub(db_url)
    hub.secrets = FileSecretStore(secrets)
    body = pyxis_event(1)
    try:
        with LiveServer(hub) as live, httpx.Client(base_url=live.url, timeout=10) as client:
            ok = client.post("/webhooks/pyxis", content=body, headers=signed_headers(SECRET, "a", body))
            secrets.unlink()
            with caplog.at_level(logging.ERROR, logger="saleshub.receive.webhooks"):
                gone = client.post("/webhooks/pyxis", content=body, headers=signed_headers(SECRET, "b", body))
            secrets.write_text("webhook:\n  pyxis: [unclosed\n", encoding="utf-8")
            bad = client.post("/webhooks/pyxis", content=body, headers=signed_headers(SECRET, "c", body))
    finally:
        hub.close()
    assert ok.status_code == 202, ok.text
    for response in (gone, bad):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert response.json()["title"] == "Secret store unavailable"
    assert "secret store unavailable" in caplog.text and str(secrets) in caplog.text


def test_a_large_body_within_the_configured_limit_is_mapped_not_quarantined(db_url: str) -> None:
    hub = open_hub(db_url, web={"max_body_bytes": 4 * 1024 * 1024})
    body = pyxis_event(1) + b" " * 1_200_000  # 1.2 MB: over the old decoder default, under the limit
    try:
        with LiveServer(hub) as live, httpx.Client(base_url=live.url, timeout=30) as client:
            response = client.post(
                "/webhooks/pyxis", content=body, headers=signed_headers(SECRET, "big", body)
            )
            assert response.status_code == 202, response.text
            assert processed(hub, response.json()["event_id"]).status == "mapped"
    finally:
        hub.close()


def test_an_inbound_topic_of_an_unknown_system_is_refused_naming_the_known_ones(db_url: str) -> None:
    hub = open_hub(
        db_url, kafka={"bootstrap_servers": "127.0.0.1:9", "inbound_topics": {"acme": "acme.orders"}}
    )
    try:
        with pytest.raises(ConfigurationError, match=r"names acme, .*known systems: erp, pyxis, tempo"):
            build_consumers(hub)
    finally:
        hub.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_single_worker_serve_stops_cleanly_on_a_signal(db_url: str, tmp_path: Path, signum: int) -> None:
    port = free_port()
    env = hub_env(tmp_path, SALESHUB_DATABASE__URL=db_url, SALESHUB_WEB__PORT=str(port))
    with subprocess.Popen(
        [sys.executable, "-m", "saleshub", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            wait_until(lambda: process.poll() is not None or post(port, 1) == 202, 60, "serve answers")
            assert process.poll() is None, "serve exited before the signal"
            process.send_signal(signum)
            assert process.wait(30) == 0, process.stderr.read() if process.stderr else ""
        finally:
            if process.poll() is None:
                process.kill()
