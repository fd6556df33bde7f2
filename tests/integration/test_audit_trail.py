"""The tamper-evident audit trail on real PostgreSQL: events and operator actions sealed per hour,
then tampered with in every way the database allows, each found by ``saleshub audit verify`` with where.

Events are recorded with ``received_at`` some hours back (as a transport stamps it), so the hours are
ended and sealable now; nothing waits on the clock.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from canonical.events import EventKind
from saleshub.actions.audit_trail import (
    GRACE,
    PERIOD,
    SEALING_OVERDUE,
    period_of,
    seal_ended,
    sealing_outlook,
    verify,
)
from saleshub.cli import app
from saleshub.publish.framing import unframe
from saleshub.publish.schemas import EventSchemas
from saleshub.receive.intake import InboundEvent, admit
from saleshub.runtime import HubRuntime
from saleshub.services import Services, build_relay
from saleshub.store.audit import Actor, record_action
from tests.conftest import ROOT
from tests.integration.conftest import read_published, wait_until
from tests.support.synthetic import pyxis_event
from tests.support.tansu import TansuBroker

pytestmark = pytest.mark.integration

BASE = period_of(datetime.now(UTC)) - timedelta(hours=4)  # hour H0; H1 follows; both long ended
H0, H1 = BASE, BASE + timedelta(hours=1)


def label(hour: datetime) -> str:
    return f"{hour:%Y-%m-%d %H:00} UTC"


def _readme_template(before: str, start: str) -> str:
    """A line the README's audit section quotes after ``before``, as a format string (each
    ``<placeholder>`` a ``{}``, in order)."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Tamper-evident audit trail", 1)[1]
    found = re.search(rf"{before}\s*`({start}[^`]+)`", section)
    assert found, f"the README quotes the line starting {start!r}"
    return re.sub(r"<\w+>", "{}", re.sub(r"\s+", " ", found.group(1)))


README_LOG_LINE = _readme_template("INFO log line", "audit trail sealed: ")
README_SEALED_LINE = _readme_template(r"prints\s+each seal \(", "sealed ")


@pytest.fixture
def run(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    monkeypatch.setenv("COLUMNS", "250")
    return CliRunner()


def record(hub: HubRuntime, at: datetime, body: bytes, key: str) -> uuid.UUID:
    event = InboundEvent("pyxis", "webhook", body, "application/json", idempotency_key=key, received_at=at)
    return hub.recorder.record(event, admit(event, hub.adapters["pyxis"])).event_id


@pytest.fixture
def trail(hub: HubRuntime) -> dict[str, object]:
    """Five events over H0 and H1 (one quarantined), processed; one operator action in H0."""
    ids = [
        record(hub, H0 + timedelta(minutes=5), pyxis_event(1), "k1"),
        record(hub, H0 + timedelta(minutes=20), pyxis_event(2), "k2"),
        record(hub, H0 + timedelta(minutes=59, seconds=59), pyxis_event(3), "k3"),
        record(hub, H1 + timedelta(minutes=1), pyxis_event(1, revision=2, event_type="order.updated"), "k4"),
        record(hub, H1 + timedelta(minutes=30), b'{"not": "an order"', "broken"),
    ]
    hub.processor().drain()
    with hub.database.engine.begin() as conn:
        record_action(conn, Actor("cli:ops", "ops"), "events.replay", "event", str(ids[0]), "a reason")
        action_id = conn.execute(text("SELECT max(action_id) FROM operator_actions")).scalar_one()
        conn.execute(
            text("UPDATE operator_actions SET acted_at = :at WHERE action_id = :id"),
            {"at": H0 + timedelta(minutes=30), "id": action_id},
        )
    return {"events": ids, "action": action_id}


def sql(hub: HubRuntime, statement: str, **params: object) -> None:
    with hub.database.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_seal_then_verify_finds_each_change_deletion_insertion_and_altered_seal_with_where(
    run: CliRunner, hub: HubRuntime, trail: dict[str, object]
) -> None:
    ids = trail["events"]
    assert isinstance(ids, list)
    sealed = run.invoke(app, ["audit", "seal"])  # the log level of the settings (INFO), no capture
    assert sealed.exit_code == 0, sealed.output
    assert README_SEALED_LINE == "sealed {}: {} events, {} operator actions, root {}, chain {}"
    printed = re.findall(
        r"^sealed (.+ UTC): (\d+) events, (\d+) operator actions, root (\w{64}), chain (\w{64})$",
        sealed.stdout,
        re.MULTILINE,
    )
    assert printed[:2] == [
        (label(H0), "3", "1", printed[0][3], printed[0][4]),
        (label(H1), "2", "0", printed[1][3], printed[1][4]),
    ], sealed.stdout
    # The INFO line the README documents, on stderr in the configured format, for each seal.
    for hour, events, actions, root, chain in printed:
        line = README_LOG_LINE.format(hour, events, actions, root, chain)
        assert re.search(
            rf" INFO saleshub\.actions\.audit_trail: {re.escape(line)}$", sealed.stderr, re.MULTILINE
        ), sealed.stderr
    assert "nothing to seal" in run.invoke(app, ["audit", "seal"]).output  # idempotent

    intact = run.invoke(app, ["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert intact.output.startswith("audit trail intact: ") and len(intact.output.strip().splitlines()) == 1
    assert "4 events" not in intact.output and "5 events, 1 operator actions" in intact.output

    # What legitimately changes after recording is not sealed: dismissal, retention, a replay's mark.
    dismissed = run.invoke(app, ["events", "dismiss", str(ids[4]), "--reason", "junk"])
    assert dismissed.exit_code == 0, dismissed.output
    sql(
        hub,
        "UPDATE sales_system_integration_events SET raw_body = NULL, raw_body_purged_at = now(), "
        "superseded_by = gen_random_uuid(), processed_at = now(), errors = '{\"x\": 1}' "
        "WHERE event_id = ANY(CAST(:ids AS uuid[]))",
        ids=[str(i) for i in ids],
    )
    after_legit = run.invoke(app, ["audit", "verify"])
    assert after_legit.exit_code == 0, after_legit.output

    # One byte of one immutable column, one row deleted, one inserted, one action and headers changed.
    sql(
        hub,
        "UPDATE sales_system_integration_events "
        "SET body_sha256 = set_byte(body_sha256, 0, get_byte(body_sha256, 0) # 1) WHERE event_id = :id",
        id=str(ids[0]),
    )
    sql(hub, "DELETE FROM sales_system_integration_events WHERE event_id = :id", id=str(ids[1]))
    inserted = uuid.uuid4()
    sql(
        hub,
        "INSERT INTO sales_system_integration_events (event_id, received_at, source_system, transport, "
        "content_type, body_sha256, body_size, idempotency_key, headers, status) "
        "SELECT :new, received_at + interval '1 second', source_system, transport, content_type, "
        "body_sha256, body_size, 'forged', headers, status FROM sales_system_integration_events "
        "WHERE event_id = :id",
        new=str(inserted),
        id=str(ids[3]),
    )
    sql(
        hub,
        'UPDATE sales_system_integration_events SET headers = headers || \'{"extra": "1"}\' '
        "WHERE event_id = :id",
        id=str(ids[4]),
    )
    sql(
        hub, "UPDATE operator_actions SET reason = 'another reason' WHERE action_id = :id", id=trail["action"]
    )

    tampered = run.invoke(app, ["audit", "verify"])
    assert tampered.exit_code == 1
    lines = tampered.output.splitlines()
    expected = {
        f"{label(H0)}: sales_system_integration_events: event {ids[0]} changed",
        f"{label(H0)}: sales_system_integration_events: event {ids[1]} deleted",
        f"{label(H1)}: sales_system_integration_events: event {inserted} inserted after the hour was sealed",
        f"{label(H1)}: sales_system_integration_events: event {ids[4]} changed",
        f"{label(H0)}: operator_actions: action {trail['action']} changed",
    }
    assert expected <= set(lines), tampered.output
    assert "audit trail NOT intact: 5 differences in " in tampered.output

    # --since the start of H1: H0's differences are out of scope.
    since = run.invoke(app, ["audit", "verify", "--since", f"{H1:%Y-%m-%dT%H:%M}"])
    assert since.exit_code == 1 and "event " + str(ids[0]) not in since.output
    assert f"event {inserted} inserted" in since.output


def test_an_altered_or_deleted_seal_breaks_the_chain(
    run: CliRunner, hub: HubRuntime, trail: dict[str, object]
) -> None:
    h2 = H1 + timedelta(hours=1)
    record(hub, h2 + timedelta(minutes=3), pyxis_event(9), "k9")
    assert run.invoke(app, ["audit", "seal"]).exit_code == 0
    with hub.database.engine.connect() as conn:
        chains = conn.execute(text("SELECT period_start, chain FROM audit_seals ORDER BY 1")).all()
    assert [row.period_start for row in chains[:3]] == [H0, H1, h2]
    anchored = run.invoke(app, ["audit", "verify", "--chain", chains[1].chain.hex()])
    assert anchored.exit_code == 0, anchored.output

    # An event inserted into H1 and its seal's count raised to hide it: the seal's chain hash and its
    # leaf list betray the count, and the leaf list, which still matches the seal's root, names the row.
    forged = uuid.uuid4()
    sql(
        hub,
        "INSERT INTO sales_system_integration_events (event_id, received_at, source_system, transport, "
        "content_type, body_sha256, body_size, idempotency_key, headers, status) "
        "SELECT :new, received_at + interval '1 second', source_system, transport, content_type, "
        "body_sha256, body_size, 'forged', headers, status FROM sales_system_integration_events "
        "WHERE event_id = :id",
        new=str(forged),
        id=str(trail["events"][3]),  # type: ignore[index]
    )
    sql(hub, "UPDATE audit_seals SET events_count = 3 WHERE period_start = :at", at=H1)
    altered = run.invoke(app, ["audit", "verify"])
    assert altered.exit_code == 1
    assert f"{label(H1)}: seal altered: its chain hash does not match its content" in altered.output
    assert (
        f"{label(H1)}: seal altered: its sales_system_integration_events count (3) does not match "
        "its leaf list (2 rows)"
    ) in altered.output
    assert (
        f"{label(H1)}: sales_system_integration_events: event {forged} inserted after the hour was sealed"
    ) in altered.output
    assert "which row is unknown" not in altered.output
    sql(hub, "UPDATE audit_seals SET events_count = 2 WHERE period_start = :at", at=H1)
    sql(hub, "DELETE FROM sales_system_integration_events WHERE event_id = :id", id=str(forged))
    assert run.invoke(app, ["audit", "verify"]).exit_code == 0

    # H1's seal deleted: the gap is named, and H2's seal no longer follows the one before it.
    sql(hub, "CREATE TABLE kept AS SELECT * FROM audit_seals WHERE period_start = :at", at=H1)
    sql(hub, "DELETE FROM audit_seals WHERE period_start = :at", at=H1)
    gap = run.invoke(app, ["audit", "verify"])
    assert gap.exit_code == 1
    assert f"{label(h2)}: seals missing: no seal for {label(H1)} to {label(h2)} (deleted seals)" in gap.output
    assert f"{label(h2)}: chain broken: this seal does not follow the seal of {label(H0)}" in gap.output
    sql(hub, "INSERT INTO audit_seals SELECT * FROM kept")

    # H1's chain hash replaced: the seal and the link after it fail, and so does the published anchor.
    sql(hub, "UPDATE audit_seals SET chain = sha256(chain) WHERE period_start = :at", at=H1)
    rewritten = run.invoke(app, ["audit", "verify", "--chain", chains[1].chain.hex()])
    assert rewritten.exit_code == 1
    assert f"{label(H1)}: seal altered: its chain hash does not match its content" in rewritten.output
    assert f"{label(h2)}: chain broken: this seal does not follow the seal of {label(H1)}" in rewritten.output
    assert f"published chain: {chains[1].chain.hex()} is the chain hash of no stored seal" in rewritten.output

    # The first seal deleted: the next claims a predecessor, and H0's rows are older than every seal.
    sql(hub, "DELETE FROM audit_seals WHERE period_start = :at", at=H0)
    deleted = run.invoke(app, ["audit", "verify"])
    assert deleted.exit_code == 1
    assert f"{label(H1)}: chain broken: the seal before this one (the first) is missing" in deleted.output
    first_event = trail["events"][0]  # type: ignore[index]
    assert f"sales_system_integration_events: event {first_event} inserted before the first seal" in (
        deleted.output
    )


def test_deleted_seals_are_found_once_every_sealer_has_had_its_turn(
    run: CliRunner, hub: HubRuntime, trail: dict[str, object]
) -> None:
    sealed = run.invoke(app, ["audit", "seal"])
    assert sealed.exit_code == 0, sealed.output
    sql(hub, "CREATE TABLE kept AS SELECT * FROM audit_seals")
    sql(hub, "DELETE FROM audit_seals")

    # H0 ended hours ago (over GRACE + SEALING_OVERDUE): its rows without a seal are a finding.
    gone = run.invoke(app, ["audit", "verify"])
    assert gone.exit_code == 1, gone.output
    assert (
        f"{label(H0)}: not sealed, although sealing is overdue: 3 events, 1 operator actions "
        "(seals deleted, or no sealer runs)"
    ) in gone.stdout, gone.output
    assert "no seals to verify yet" not in gone.output

    # The same rows just after H1's grace, before any sealer could run (a fresh install): counted only.
    fresh = verify(hub.database.engine, now=lambda: H1 + PERIOD + GRACE + timedelta(minutes=1))
    assert fresh.intact and fresh.seals == 0 and fresh.unsealed_hours == 2, fresh.findings
    # Once SEALING_OVERDUE has passed after H1's grace, both hours are findings, each with its counts.
    late = verify(
        hub.database.engine, now=lambda: H1 + PERIOD + GRACE + SEALING_OVERDUE + timedelta(seconds=1)
    )
    assert [str(f) for f in late.findings] == [
        f"{label(H0)}: not sealed, although sealing is overdue: 3 events, 1 operator actions "
        "(seals deleted, or no sealer runs)",
        f"{label(H1)}: not sealed, although sealing is overdue: 2 events, 0 operator actions "
        "(seals deleted, or no sealer runs)",
    ]
    # Only the newest seals deleted, their rows kept: the same finding for H1 alone (the hours after
    # it are empty).
    sql(hub, "INSERT INTO audit_seals SELECT * FROM kept WHERE period_start < :at", at=H1)
    newest = verify(
        hub.database.engine, now=lambda: H1 + PERIOD + GRACE + SEALING_OVERDUE + timedelta(seconds=1)
    )
    assert [f.where for f in newest.findings] == [label(H1)] and newest.seals == 1, newest.findings
    sql(hub, "INSERT INTO audit_seals SELECT * FROM kept WHERE period_start >= :at", at=H1)
    again = run.invoke(app, ["audit", "verify"])
    assert again.exit_code == 0 and again.output.startswith("audit trail intact: "), again.output


def test_no_seals_to_verify_only_when_no_ended_hour_holds_rows(run: CliRunner) -> None:
    empty = run.invoke(app, ["audit", "verify"])
    assert empty.exit_code == 0, empty.output
    assert empty.stdout.strip() == (
        "no seals to verify yet: no hour holding rows has ended and passed its 10-minute grace"
    )


def test_seal_says_which_hour_waits_for_its_grace_and_until_when(
    hub: HubRuntime, trail: dict[str, object]
) -> None:
    engine = hub.database.engine
    in_grace = H1 + PERIOD + timedelta(seconds=29)  # H1 ended 29 seconds ago
    made = seal_ended(engine, hub.outbox, now=lambda: in_grace)
    assert [s.period_start for s in made] == [H0]
    waiting = sealing_outlook(engine, now=in_grace)
    assert str(waiting) == (
        f"{label(H1)} ended at {H1 + PERIOD:%H:%M} UTC and waits for the 10-minute grace: "
        f"sealable from {H1 + PERIOD + GRACE:%H:%M} UTC"
    )
    assert "every ended hour is sealed" not in str(waiting)
    until = sealing_outlook(engine, now=in_grace + GRACE, until=H1)
    assert str(until) == f"every hour ending by {H1:%Y-%m-%d %H:%M} UTC is sealed"
    seal_ended(engine, hub.outbox, now=lambda: in_grace + GRACE)
    assert str(sealing_outlook(engine, now=in_grace + GRACE)) == "every ended hour is sealed"


def test_each_seal_goes_to_the_outbox_as_an_avro_audit_sealed_event(
    hub: HubRuntime, trail: dict[str, object]
) -> None:
    made = seal_ended(hub.database.engine, hub.outbox, until=H1)  # only H0: H1 ends after `until`
    assert [s.period_start for s in made] == [H0]
    made += seal_ended(hub.database.engine, hub.outbox, until=H1 + timedelta(hours=1))
    assert [s.period_start for s in made] == [H0, H1]
    with hub.database.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM event_outbox WHERE kind = 'audit_sealed' ORDER BY outbox_id")
        ).all()
    schema = EventSchemas().current[EventKind.AUDIT_SEALED]
    records = [schema.decode(row.payload) for row in rows]
    assert [r["chain"] for r in records] == [s.chain.hex() for s in made]
    assert records[1]["previous_chain"] == records[0]["chain"]
    assert (records[0]["events_count"], records[0]["actions_count"]) == (3, 1)
    assert {row.topic for row in rows} == {EventKind.AUDIT_SEALED.topic}
    assert {row.message_key for row in rows} == {"audit"} and {row.source_system for row in rows} == {"audit"}
    assert verify(hub.database.engine).intact
    # Seals deleted, the same rows sealed again: the same chains, each announced once only.
    sql(hub, "DELETE FROM audit_seals")
    again = seal_ended(hub.database.engine, hub.outbox, until=H1 + timedelta(hours=1))
    assert [s.chain for s in again] == [s.chain for s in made]
    with hub.database.engine.connect() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM event_outbox WHERE kind = 'audit_sealed'")
        ).scalar_one()
    assert count == 2 and verify(hub.database.engine).intact


def test_a_seal_reaches_kafka_with_cloudevents_headers(kafka_hub: HubRuntime, broker: TansuBroker) -> None:
    record(kafka_hub, H0 + timedelta(minutes=1), pyxis_event(1), "k1")
    (made,) = seal_ended(kafka_hub.database.engine, kafka_hub.outbox, until=H1)
    relay = build_relay(kafka_hub)
    try:
        assert relay.drain(timeout=60) >= 1
    finally:
        relay.close()
    (message,) = read_published(kafka_hub, broker, EventKind.AUDIT_SEALED.topic)
    headers = {key: (value or b"").decode() for key, value in message.headers() or []}
    assert headers["ce_source"] == "/saleshub/audit" and headers["ce_type"] == EventKind.AUDIT_SEALED.ce_type
    assert message.key() == b"audit"
    framed = unframe(message.value() or b"")
    record_ = EventSchemas().current[EventKind.AUDIT_SEALED].decode(framed.body)
    assert record_["chain"] == made.chain.hex() and record_["events_count"] == 1
    assert str(record_["event_id"]) == headers["ce_id"]


def test_serve_seals_ended_hours_in_the_background(hub: HubRuntime, trail: dict[str, object]) -> None:
    services = Services.start(hub, sealing=True)
    try:

        def sealed_up_to_now() -> bool:
            result = verify(hub.database.engine)
            return result.seals >= 2 and result.unsealed_hours == 0

        wait_until(sealed_up_to_now, 120, "the background sealing of the ended hours")
    finally:
        services.stop()
    last = period_of(datetime.now(UTC) - GRACE)
    with hub.database.engine.connect() as conn:
        newest = conn.execute(text("SELECT max(period_end) FROM audit_seals")).scalar_one()
    assert newest >= last


def test_audit_alone_still_lists_the_operator_actions(run: CliRunner, trail: dict[str, object]) -> None:
    for args in (["audit"], ["audit", "--action", "events.replay"], ["audit", "actions", "--limit", "5"]):
        listed = run.invoke(app, args)
        assert listed.exit_code == 0, listed.output
        assert (
            "Operator actions" in listed.output
            and "events.replay" in listed.output
            and "a reason" in listed.output
        )
    assert "no operator actions recorded" in run.invoke(app, ["audit", "--action", "nothing.such"]).output
    helped = run.invoke(app, ["audit", "--help"]).output
    assert all(name in helped for name in ("actions", "seal", "verify"))
