"""One role per process, as the Kubernetes chart runs them: receivers, processors, pollers, nightly runs.

``saleshub serve --receive-only`` records webhooks and leaves them queued; a ``saleshub process``
process maps them; both answer the health paths (the processor on ``--health-port``) and stop with
exit 0 on SIGTERM. Two ``saleshub poll serve`` replicas both skip a feed whose lock another session
holds, and one reads it once it is free. The poller and reconciliation commands refuse to start
without a polled system. A release runs on the schema of the next one (a rollout migrates first; a
rollback leaves the schema).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from saleshub.cli import app
from saleshub.platform.settings import Settings
from saleshub.receive.app import readiness_of
from saleshub.runtime import HubRuntime
from saleshub.store.polling import try_lock, unlock
from tests.conftest import MAPPINGS
from tests.integration.conftest import SECRET, SECRETS, free_port, wait_until
from tests.support.source_server import PASSWORD, USERNAME, SourceServer
from tests.support.synthetic import pyxis_event, signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 20


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "saleshub", *args], cwd=ROOT, env=env, stdout=sink, stderr=sink
        )


def answers(url: str, process: subprocess.Popen[bytes], log: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"exited with {process.returncode}: {log.read_text()[-3000:]}")
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def statuses(db_url: str) -> dict[str, int]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT status, count(*) FROM sales_system_integration_events GROUP BY status")
            )
            return {str(row[0]): int(row[1]) for row in rows.all()}
    finally:
        engine.dispose()


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert code == 0, log.read_text()[-3000:]


def test_a_receive_only_server_leaves_its_events_to_a_processor_process(db_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        **SECRETS,
        "SALESHUB_DATABASE__URL": db_url,
        "SALESHUB_DATABASE__DATA_DIR": str(tmp_path / "data"),
        "SALESHUB_LOG_LEVEL": "WARNING",
    }
    web, health = free_port(), free_port()
    receiver_log, processor_log = tmp_path / "receiver.log", tmp_path / "processor.log"
    receiver = start(["serve", "--receive-only", "--port", str(web)], env, receiver_log)
    processor: subprocess.Popen[bytes] | None = None
    try:
        base = f"http://127.0.0.1:{web}"
        wait_until(
            lambda: answers(f"{base}/health/ready", receiver, receiver_log), 120, "the receiver is ready"
        )
        with httpx.Client(base_url=base, timeout=30) as client:
            for number in range(EVENTS):
                body = pyxis_event(number)
                headers = signed_headers(SECRET, f"msg_roles_{number}", body)
                assert client.post("/webhooks/pyxis", content=body, headers=headers).status_code == 202
        # A serve with a processor maps each event within moments of its commit's notification; the
        # receiver has none, so all stay queued however long this check takes.
        assert statuses(db_url) == {"accepted": EVENTS}
        assert "receiving only" in receiver_log.read_text()

        processor = start(["process", "--health-port", str(health)], env, processor_log)
        probe = f"http://127.0.0.1:{health}"
        wait_until(lambda: answers(f"{probe}/health/live", processor, processor_log), 120, "processor live")
        ready = httpx.get(f"{probe}/health/ready", timeout=10)
        assert ready.status_code == 200 and ready.json()["database"] == "ok", ready.text
        assert httpx.get(f"{probe}/elsewhere", timeout=10).status_code == 404
        wait_until(lambda: statuses(db_url) == {"mapped": EVENTS}, 120, "the processor mapped every event")
        stop(processor, processor_log)
        processor = None
        stop(receiver, receiver_log)
    finally:
        for process in (processor, receiver):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(30)


def test_the_poller_and_nightly_commands_need_a_polled_system(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    monkeypatch.delenv("SALESHUB_POLLERS__SYSTEMS", raising=False)
    runner = CliRunner()
    polled = runner.invoke(app, ["poll", "serve"])
    assert polled.exit_code == 1
    assert "SALESHUB_POLLERS__SYSTEMS" in polled.output
    nightly = runner.invoke(app, ["reconcile", "nightly"])
    assert nightly.exit_code == 2
    assert "SALESHUB_POLLERS__SYSTEMS" in nightly.output


def test_a_schema_migrated_by_the_next_release_keeps_this_one_ready(hub: HubRuntime) -> None:
    # A rollout migrates first (the chart's hook), while the previous release still serves: its
    # pods must stay ready on a schema newer than they know (migrations stay compatible one release
    # back), or every receiver drops out of the Service until the new ones start.
    assert readiness_of(hub).status == "ok"
    with hub.database.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_next_release'"))
    ahead = readiness_of(hub)
    assert ahead.status == "ok"
    assert ahead.schema_revision == "9999_from_the_next_release"
    with hub.database.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0008'"))
    assert readiness_of(hub).status == "not migrated", "a schema behind this release is not ready"


def test_serve_of_the_previous_release_starts_on_the_next_releases_schema(db_url: str) -> None:
    # After `helm rollback` the schema stays where the newer release migrated it; the previous
    # release's `serve` (which migrates on start) must start on it rather than fail to find the
    # revision among its own migrations.
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_next_release'"))
    engine.dispose()
    hub = open_hub_migrating(db_url)
    hub.close()


def open_hub_migrating(db_url: str) -> HubRuntime:
    settings = Settings(database={"url": db_url}, mappings_dir=MAPPINGS)  # type: ignore[arg-type]
    return HubRuntime.open(settings, migrate=True)


def test_two_poller_replicas_poll_a_feed_once_the_lock_is_free(db_url: str, tmp_path: Path) -> None:
    # The chart's pollers: two `saleshub poll serve` replicas. While another session holds the
    # ERP feed's advisory lock both skip their runs (a standby); once it is free one of them reads
    # the feed, and every order is recorded once.
    engine = create_engine(db_url)
    holder = engine.connect()
    assert try_lock(holder, "erp", "incremental")
    holder.commit()
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []
    with SourceServer() as source:
        source.erp.add(range(1, 201))
        env = {
            **os.environ,
            "SALESHUB_DATABASE__URL": db_url,
            "SALESHUB_DATABASE__DATA_DIR": str(tmp_path / "data"),
            "SALESHUB_LOG_LEVEL": "INFO",
            "SALESHUB_SECRET_SOURCE_ERP_USERNAME": USERNAME,
            "SALESHUB_SECRET_SOURCE_ERP_PASSWORD": PASSWORD,
            "SALESHUB_POLLERS__SYSTEMS": json.dumps(
                {"erp": {"base_url": source.url, "interval_seconds": 1, "page_size": 50}}
            ),
        }
        try:
            for number in range(2):
                log = tmp_path / f"poller-{number}.log"
                processes.append((start(["poll", "serve", "--health-port", str(free_port())], env, log), log))

            def both_skipped() -> bool:
                for process, log in processes:
                    assert process.poll() is None, log.read_text()[-3000:]
                return all("another process is polling erp" in log.read_text() for _, log in processes)

            wait_until(both_skipped, 120, "both pollers skipped the locked feed")
            assert source.counters.pages == 0
            unlock(holder, "erp", "incremental")

            def recorded() -> int:
                with engine.connect() as conn:
                    return int(
                        conn.execute(
                            text(
                                "SELECT count(*) FROM sales_system_integration_events WHERE transport = 'poll'"
                            )
                        ).scalar_one()
                    )

            wait_until(lambda: recorded() == 200, 120, "a poller recorded the feed's 200 orders")
            for process, log in processes:
                stop(process, log)
            assert recorded() == 200
        finally:
            holder.close()
            engine.dispose()
            for process, _ in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(30)
