"""Mapping revisions as data: deployed while the hub serves under load, rolled back, followed by
several processes, through the real CLI (in-process Typer) and real PostgreSQL (pgserver)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from saleshub.cli import app
from saleshub.store.mapping_revisions import live_processes
from tests.conftest import MAPPINGS, ROOT
from tests.integration.conftest import SECRET, LiveServer, open_hub, wait_until
from tests.support.synthetic import pyxis_event, signed_headers

pytestmark = pytest.mark.integration


@pytest.fixture
def run(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    monkeypatch.setenv("COLUMNS", "250")
    return CliRunner()


def kiosk(number: int) -> bytes:
    """An order sold through a store terminal: a channel code the shipped mappings do not know."""
    return pyxis_event(number).replace(b'"channel": "STORE"', b'"channel": "TERMINAL"')


@pytest.fixture
def fixed_mappings(tmp_path: Path) -> Path:
    """The mappings with the TERMINAL channel code added (the golden samples still pass)."""
    target = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, target)
    with (target / "crosswalks" / "channels.csv").open("a", encoding="utf-8") as handle:
        handle.write("IN_STORE,TERMINAL,,,In-store terminal\n")
    return target


def deploy(run: CliRunner, directory: Path, message: str) -> str:
    result = run.invoke(app, ["mappings", "deploy", "--dir", str(directory), "--message", message])
    assert result.exit_code == 0, result.output
    return result.output


def test_deploy_while_serving_under_load_then_roll_back(  # noqa: PLR0915 - one scenario, told in order
    run: CliRunner, db_url: str, fixed_mappings: Path
) -> None:
    assert "deployed r1" in deploy(run, MAPPINGS, "as shipped")
    hub = open_hub(db_url)
    assert hub.mappings.revision == 1
    statuses: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def send(client: httpx.Client) -> None:
        number = 0
        try:
            while not stop.is_set():
                number += 1
                body = kiosk(number)
                response = client.post(
                    "/webhooks/pyxis", content=body, headers=signed_headers(SECRET, f"w{number}", body)
                )
                statuses.append(response.status_code)
        except BaseException as exc:  # the test reports it; a dead sender must not go unnoticed
            failures.append(exc)

    try:
        with LiveServer(hub) as live, httpx.Client(base_url=live.url, timeout=120) as client:
            sender = threading.Thread(target=send, args=(client,))
            sender.start()
            # Conditions, not sleeps: some events mapped with r1 before the deployment, and some with
            # r2 after the switch, however fast this machine sends and maps.
            wait_until(lambda: _mapped_with(hub, "r1") >= 5 or bool(failures), 120, "r1 maps events")
            output = deploy(run, fixed_mappings, "TERMINAL is an in-store channel")
            assert "deployed r2" in output, output
            wait_until(lambda: hub.mappings.revision == 2, 120, "the serving process maps with r2")
            wait_until(lambda: _mapped_with(hub, "r2") >= 5 or bool(failures), 120, "r2 maps events")
            stop.set()
            sender.join()
            assert not failures, failures
            ready = client.get("/health/ready").json()
            assert ready["mapping_revision"] == 2 and ready["process"], ready

            wait_until(lambda: _unprocessed(hub) == 0, 120, "every event is processed")
            with hub.database.engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT mapping, status, received_at FROM sales_system_integration_events "
                        "ORDER BY received_at"
                    )
                ).all()
            # No request failed, and every event names the revision that mapped it.
            assert statuses and set(statuses) == {202}, sorted(set(statuses))
            assert len(rows) == len(statuses)
            by_revision = {
                "r1": [r for r in rows if r.mapping.endswith("/r1")],
                "r2": [r for r in rows if r.mapping.endswith("/r2")],
            }
            assert len(by_revision["r1"]) + len(by_revision["r2"]) == len(rows)
            assert by_revision["r1"] and by_revision["r2"]
            assert {r.status for r in by_revision["r1"]} == {"quarantined"}  # TERMINAL unknown in r1
            assert {r.status for r in by_revision["r2"]} == {"mapped"}

            # Rollback restores the previous mapping for new events.
            rolled = run.invoke(app, ["mappings", "rollback", "r1", "-m", "undo"])
            assert rolled.exit_code == 0 and "deployed r3" in rolled.output, rolled.output
            wait_until(lambda: hub.mappings.revision == 3, 120, "the hub maps with r3")
            body = kiosk(999_999)
            response = client.post(
                "/webhooks/pyxis", content=body, headers=signed_headers(SECRET, "after-rollback", body)
            )
            assert response.status_code == 202
            wait_until(lambda: _unprocessed(hub) == 0, 120, "the event is processed")
            with hub.database.engine.connect() as conn:
                last = conn.execute(
                    text(
                        "SELECT mapping, status FROM sales_system_integration_events "
                        "WHERE order_key = 'PX-SYN-000999999'"
                    )
                ).one()
            assert last.mapping.endswith("/r3") and last.status == "quarantined"
    finally:
        stop.set()
        hub.close()

    history = run.invoke(app, ["mappings", "history"])
    assert history.exit_code == 0, history.output
    assert "r3 (deployed)" in history.output and "rollback to r1" in history.output
    assert "TERMINAL is an in-store channel" in history.output
    diff = run.invoke(app, ["mappings", "diff", "r1", "r2"])
    assert diff.exit_code == 0, diff.output
    assert (
        "crosswalks/channels.csv" in diff.output
        and "added: canonical IN_STORE, pyxis TERMINAL" in diff.output
    )
    same = run.invoke(app, ["mappings", "diff", "r1", "r3"])
    assert "have the same mappings" in same.output
    status = run.invoke(app, ["status"])
    assert "mappings: revision r3" in status.output, status.output


def _mapped_with(hub: object, revision: str) -> int:
    """How many events the given revision (``r1``) has mapped so far."""
    with hub.database.engine.connect() as conn:  # type: ignore[attr-defined]
        query = text("SELECT count(*) FROM sales_system_integration_events WHERE mapping LIKE :revision")
        return int(conn.execute(query, {"revision": f"%/{revision}"}).scalar_one())


def _unprocessed(hub: object) -> int:
    with hub.database.engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(text("SELECT count(*) FROM event_queue")).scalar_one())


def test_two_hub_processes_switch_together(
    run: CliRunner, db_url: str, fixed_mappings: Path, tmp_path: Path
) -> None:
    deploy(run, MAPPINGS, "as shipped")
    env = {
        **os.environ,
        "SALESHUB_DATABASE__URL": db_url,
        "SALESHUB_DATABASE__DATA_DIR": str(tmp_path / "data"),
        "SALESHUB_LOG_LEVEL": "WARNING",
    }
    engine = create_engine(db_url)
    processes = []
    for n in range(2):
        with (tmp_path / f"process{n}.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "saleshub", "process"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            )

    def revisions() -> list[int | None]:
        with engine.connect() as conn:
            return sorted(p.mapping_revision or 0 for p in live_processes(conn, 30) if p.role == "process")

    try:
        wait_until(lambda: revisions() == [1, 1], 60, "both processes run r1")
        output = deploy(run, fixed_mappings, "both at once")
        wait_until(lambda: revisions() == [2, 2], 120, "both processes run r2")
        assert "2 running hub process(es) switched to r2" in output, output
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        with engine.connect() as conn:  # a stopped process removes its row
            assert not [p for p in live_processes(conn, 30) if p.role == "process"]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        engine.dispose()


def test_deploy_refuses_broken_mappings_and_explains_fields(run: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, broken)
    pyxis = broken / "pyxis" / "order.yaml"
    pyxis.write_text(pyxis.read_text().replace("store_code: {path", "store_cod: {path"))
    refused = run.invoke(app, ["mappings", "deploy", "--dir", str(broken)])
    assert refused.exit_code == 1
    assert "pyxis/order.yaml:" in refused.output and "did you mean" in refused.output
    assert "Traceback" not in refused.output
    assert "no mapping revision deployed yet" in run.invoke(app, ["mappings", "history"]).output

    assert "deployed r1" in deploy(run, MAPPINGS, "first")
    again = run.invoke(app, ["mappings", "deploy", "--dir", str(MAPPINGS)])
    assert again.exit_code == 0 and "nothing to deploy" in again.output

    explained = run.invoke(app, ["mappings", "explain", "pyxis", "sales_channel"])
    assert explained.exit_code == 0, explained.output
    assert "pyxis/order@2026.11.1#" in explained.output and "/r1" in explained.output
    assert "order.channel" in explained.output and "channels.csv" in explained.output
    assert "trim, upper" in explained.output and "generated code" in explained.output
    table = run.invoke(app, ["mappings", "explain", "tempo"])
    assert table.exit_code == 0 and "lines.unit_price" in table.output
    unknown = run.invoke(app, ["mappings", "explain", "pyxis", "note"])
    assert unknown.exit_code == 1 and "did you mean 'notes'?" in unknown.output

    preview = run.invoke(
        app,
        ["mappings", "preview", "pyxis", str(ROOT / "contracts/samples/pyxis/01_es_in_store_created.json")],
    )
    assert preview.exit_code == 0 and "/r1" in preview.output
