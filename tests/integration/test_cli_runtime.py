"""The operators' and stewards' runtime commands against a real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from saleshub.cli import app
from saleshub.receive.intake import InboundEvent
from saleshub.runtime import HubRuntime
from saleshub.store.migrate import head_revision
from tests.integration.conftest import free_port
from tests.integration.conftest import ingest as ingest_event
from tests.support.synthetic import pyxis_event
from tests.support.tansu import TansuBroker

pytestmark = pytest.mark.integration


@pytest.fixture
def run(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    monkeypatch.setenv("COLUMNS", "250")
    return CliRunner()


def ingest(hub: HubRuntime, body: bytes) -> object:
    return ingest_event(hub, InboundEvent("pyxis", "webhook", body, "application/json"))


def kiosk(number: int) -> bytes:
    return pyxis_event(number).replace(b'"channel": "STORE"', b'"channel": "KIOSK"')


def test_status_events_orders(run: CliRunner, hub: HubRuntime) -> None:
    mapped = ingest(hub, pyxis_event(1))
    ingest(hub, kiosk(2))
    status = run.invoke(app, ["status"])
    assert status.exit_code == 0, status.output
    assert "open quarantined/failed events: 1" in status.output
    # The last hour's events per minute of each system.
    assert "events in the last hour, pyxis: 2, 0.0 per minute" in status.output
    # No Kafka configured: the order and the rejection wait in the outbox, and status says so.
    assert "outbox: 2 events waiting" in status.output
    assert "Kafka: not configured" in status.output
    assert "processing: nothing waiting" in status.output

    listed = run.invoke(app, ["events", "list", "--status", "quarantined"])
    assert listed.exit_code == 0 and "sales_channel" in listed.output and "KIOSK" not in listed.output

    shown = run.invoke(app, ["events", "show", str(mapped.event_id)])
    assert shown.exit_code == 0 and '"status": "mapped"' in shown.output
    body = run.invoke(app, ["events", "show", str(mapped.event_id), "--body"])
    assert body.stdout_bytes == pyxis_event(1)

    order = run.invoke(app, ["orders", "show", "pyxis:PX-SYN-000000001"])
    assert order.exit_code == 0, order.output
    assert "Versions" in order.output and "pyxis/order@" in order.output

    as_json = run.invoke(app, ["orders", "show", "pyxis:PX-SYN-000000001", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["external_order_id"] == "PX-SYN-000000001"  # the JSON alone

    missing = run.invoke(app, ["orders", "show", "not-a-uuid"])
    assert missing.exit_code == 2 and "must be a UUID" in missing.output  # a bad argument: usage error
    # A malformed id is a usage error for every command that takes one (exit 2); an unknown one is not.
    for words in (
        ["events", "show", "zzzz"],
        ["events", "dismiss", "zzzz", "--reason", "junk"],
        ["reconcile", "report", "zz", "--format", "json"],
    ):
        bad = run.invoke(app, words)
        assert bad.exit_code == 2, (words, bad.output)
    unknown = run.invoke(app, ["events", "show", "ffffffff"])
    assert unknown.exit_code == 1 and "no event id starts with" in unknown.output, unknown.output


def test_replay_and_impact_commands(
    run: CliRunner, hub: HubRuntime, fixed_mappings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(10, 13):
        ingest(hub, kiosk(number))
    impact = run.invoke(
        app, ["mappings", "impact", "pyxis", "--mapping", str(fixed_mappings), "--last", "10"]
    )
    assert impact.exit_code == 0, impact.output
    assert "newly mapped 3" in impact.output

    monkeypatch.setenv("SALESHUB_MAPPINGS_DIR", str(fixed_mappings))
    replay = run.invoke(app, ["events", "replay", "--system", "pyxis"])
    assert replay.exit_code == 0, replay.output
    assert "replayed 3" in replay.output and "mapped: 3" in replay.output
    again = run.invoke(app, ["events", "replay"])
    assert "selected 0" in again.output


def test_db_upgrade_partitions_retention(run: CliRunner) -> None:
    upgraded = run.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0 and head_revision() in upgraded.output
    partitions = run.invoke(app, ["db", "partitions"])
    assert partitions.exit_code == 0 and "sales_system_integration_events_" in partitions.output
    retention = run.invoke(app, ["db", "retention", "--raw-body-days", "90", "--dry-run"])
    assert retention.exit_code == 0, retention.output
    assert "no raw body, personal data or order is past its period" in retention.output


def test_kafka_commands_publish_the_backlog_and_create_topics(
    run: CliRunner, hub: HubRuntime, broker: TansuBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest(hub, pyxis_event(1))
    unconfigured = run.invoke(app, ["kafka", "relay", "--drain"])
    assert unconfigured.exit_code == 1 and "SALESHUB_KAFKA__BOOTSTRAP_SERVERS" in unconfigured.output
    monkeypatch.setenv("SALESHUB_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")  # nobody there
    monkeypatch.setenv("SALESHUB_RELAY__MESSAGE_TIMEOUT_MS", "1000")
    unreachable = run.invoke(app, ["kafka", "relay", "--drain"])
    assert unreachable.exit_code == 1, unreachable.output
    assert "the outbox was not drained" in unreachable.output, unreachable.output
    assert "outbox: 1 events waiting" in run.invoke(app, ["status"]).output
    monkeypatch.setenv("SALESHUB_KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap)
    topics = run.invoke(app, ["kafka", "topics"])
    assert topics.exit_code == 0, topics.output
    assert "integration.sales.order_received: created" in topics.output
    drained = run.invoke(app, ["kafka", "relay", "--drain"])
    assert drained.exit_code == 0 and "published 1 events" in drained.output, drained.output
    status = run.invoke(app, ["status"])
    assert "outbox: empty" in status.output and f"Kafka: {broker.bootstrap}" in status.output

    kept = run.invoke(app, ["db", "retention", "--outbox-days", "7"])
    assert "deleted 0 published outbox rows" in kept.output, kept.output
    with hub.database.engine.begin() as conn:
        conn.execute(text("UPDATE event_outbox SET published_at = now() - interval '8 days'"))
    ingest(hub, pyxis_event(2))  # unpublished: never purged
    purged = run.invoke(app, ["db", "retention", "--outbox-days", "7"])
    assert "deleted 1 published outbox rows" in purged.output, purged.output
    status = run.invoke(app, ["status"])
    assert "outbox: 1 events waiting" in status.output
