"""The operators' commands and answers, through the real CLI (in-process Typer), a live uvicorn server
and real PostgreSQL (pgserver): send a signed webhook, see the order, dismiss junk, a reused webhook-id."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from saleshub.cli import app
from saleshub.runtime import HubRuntime
from tests.integration.conftest import SECRET, LiveServer, wait_until
from tests.support.synthetic import pyxis_event

pytestmark = pytest.mark.integration


@pytest.fixture
def run(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    monkeypatch.setenv("SALESHUB_SECRET_WEBHOOK_PYXIS", SECRET)
    monkeypatch.setenv("COLUMNS", "250")
    return CliRunner()


def _processed(hub: HubRuntime) -> bool:
    from sqlalchemy import text

    with hub.database.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM event_queue")).scalar_one() == 0


def test_send_see_dismiss_and_a_reused_webhook_id(
    run: CliRunner, hub: HubRuntime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    order = tmp_path / "order.json"
    order.write_bytes(pyxis_event(7))
    junk = tmp_path / "junk.json"
    junk.write_bytes(pyxis_event(8).replace(b'"channel": "STORE"', b'"channel": "NOWHERE"'))
    with LiveServer(hub) as live:
        sent = run.invoke(app, ["webhooks", "send", "pyxis", str(order), "--url", live.url, "--id", "w-7"])
        assert sent.exit_code == 0, sent.output
        assert "202 Accepted" in sent.output and '"status": "accepted"' in sent.output
        again = run.invoke(app, ["webhooks", "send", "pyxis", str(order), "--url", live.url, "--id", "w-7"])
        assert again.exit_code == 0 and "200 OK" in again.output
        with caplog.at_level(logging.WARNING, logger="saleshub.receive.webhooks"):
            reused = run.invoke(
                app, ["webhooks", "send", "pyxis", str(junk), "--url", live.url, "--id", "w-7"]
            )
        assert reused.exit_code == 1 and "409 Conflict" in reused.output, reused.output
        assert "different body" in reused.output
        refusals = [r for r in caplog.records if r.getMessage().startswith("webhook refused")]
        assert [r.http_status for r in refusals] == [409]  # type: ignore[attr-defined]
        assert refusals[0].system == "pyxis" and "NOWHERE" not in refusals[0].getMessage()  # type: ignore[attr-defined]
        quarantined = run.invoke(app, ["webhooks", "send", "pyxis", str(junk), "--url", live.url])
        assert quarantined.exit_code == 0, quarantined.output
        wait_until(lambda: _processed(hub), 120, "both events are processed")

        docs = httpx.get(f"{live.url}/docs")
        assert docs.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in docs.text
        assert "cdn" not in docs.text and "http" not in docs.text.split("<body>")[1].split("openapi.json")[0]
        assert httpx.get(f"{live.url}/docs/assets/swagger-ui-bundle.js").status_code == 200

    listed = run.invoke(app, ["orders", "list", "--system", "pyxis", "--country", "es"])
    assert listed.exit_code == 0 and "pyxis:PX-SYN-000000007" in listed.output, listed.output
    assert "PX-SYN-000000008" not in listed.output
    assert (
        run.invoke(app, ["orders", "list", "--channel", "PHONE"]).output.strip().endswith("no orders match")
    )
    assert run.invoke(app, ["orders", "list", "--status", "LOST"]).exit_code == 2

    events = run.invoke(app, ["events", "list", "--status", "quarantined"])
    assert events.exit_code == 0 and "PX-SYN-000000008" in events.output, events.output
    event_id = next(
        match.group(0)
        for line in events.output.splitlines()
        if "PX-SYN-000000008" in line and (match := re.search(r"[0-9a-f]{8}-[0-9a-f-]{27}", line))
    )
    shown = run.invoke(app, ["events", "show", event_id[:8]])
    assert shown.exit_code == 0 and '"order_key": "PX-SYN-000000008"' in shown.output, shown.output
    assert run.invoke(app, ["events", "show", "zz"]).exit_code == 2  # a malformed id: usage

    dismissed = run.invoke(
        app, ["events", "dismiss", event_id[:8], "--reason", "test message from the sender"]
    )
    assert dismissed.exit_code == 0 and "dismissed (was quarantined)" in dismissed.output, dismissed.output
    shown = run.invoke(app, ["events", "show", event_id])
    assert '"status": "dismissed"' in shown.output and "test message from the sender" in shown.output
    twice = run.invoke(app, ["events", "dismiss", event_id, "--reason", "again"])
    assert twice.exit_code == 1 and "not an open quarantined or failed event" in twice.output
    status = run.invoke(app, ["status"])
    assert "open quarantined/failed events: 0" in status.output, status.output


def test_impact_counts_orders_not_events(run: CliRunner, hub: HubRuntime, tmp_path: Path) -> None:
    from tests.integration.conftest import record_batch

    record_batch(hub, [pyxis_event(1, revision=r) for r in (1, 2, 3)] + [pyxis_event(2)])
    time.sleep(0.1)
    result = run.invoke(app, ["mappings", "impact", "pyxis", "--mapping", "mappings", "--last", "10"])
    assert result.exit_code == 0, result.output
    assert "2 orders compared" in result.output and "unchanged 2" in result.output
