"""Personal data at rest, erasure and export, on the real embedded PostgreSQL and its ``pg_dump``.

Canary values (names, e-mail, phone, street, loyalty reference) go in through the recorder and the
processor like any order; a plain-text dump of the whole database must never contain them, before
or after an erasure, while another subject's data stays readable and the erased orders' facts stay.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, select, text
from typer.testing import CliRunner

from saleshub.actions.events import cli_actor
from saleshub.actions.privacy import Criteria, erase, export
from saleshub.cli import app
from saleshub.errors import InvalidRequestError, KeyServiceError
from saleshub.platform.keys import LocalMasterKey
from saleshub.publish.outbox import Outbox
from saleshub.receive.intake import InboundEvent, admit
from saleshub.runtime import HubRuntime
from saleshub.stewards.lineage import ERASED_REASON, RevisionCatalogs, explain_event, explain_version
from saleshub.store import queries
from saleshub.store.backup import _tool
from saleshub.store.events import event_outcomes
from saleshub.store.personal import ERASED, personal_data
from saleshub.store.sealing import clear_counts, seal_batch
from saleshub.store.tables import event_outbox, privacy_erasures, service_orders
from tests.integration.conftest import ingest, open_hub
from tests.support.synthetic import pyxis_event

SUBJECT = {
    "firstName": "Zebulonia",
    "lastName": "Quaxworthy",
    "email": "zebulonia.quaxworthy@canary.example",
    "phone": "+34 699 111 222",
    "id": "PXC-CANARY-77",
}
STREET = "Calle Canaria Inventada 99"
OTHER_EMAIL = "otro.cliente@example.com"
CANARIES = (
    "Zebulonia",
    "Quaxworthy",
    "zebulonia.quaxworthy@canary",
    "699111222",
    "PXC-CANARY-77",
    "Canaria Inventada",
    "LMC-CANARY",
)


def _order(number: int, *, customer: dict[str, str], street: str, revision: int = 1) -> bytes:
    event: dict[str, Any] = json.loads(pyxis_event(number, revision=revision))
    event["order"]["customer"].update(customer)
    event["order"]["serviceAddress"]["street"] = street
    event["order"]["notes"] = f"Llamar a {customer.get('firstName', 'cliente')} antes"
    event["order"]["attributes"]["loyaltyCard"] = f"LMC-CANARY-{customer.get('id', 'none')}"
    return json.dumps(event, ensure_ascii=False).encode()


def _send(hub: HubRuntime, body: bytes) -> uuid.UUID:
    receipt = ingest(hub, InboundEvent("pyxis", "webhook", body, "application/json"))
    assert receipt.status.value == "mapped", receipt
    return receipt.event_id


def _dump(db_url: str, file: Path) -> bytes:
    url = make_url(db_url)
    subprocess.run(
        [
            str(_tool("pg_dump")),
            "--no-owner",
            f"--dbname=postgresql://{url.username}@{url.host}:{url.port}/{url.database}"
            if url.host and not str(url.host).startswith("/")
            else f"--dbname={url.render_as_string(hide_password=False).replace('+psycopg', '')}",
            "-f",
            str(file),
        ],
        check=True,
        capture_output=True,
    )
    return file.read_bytes()


def _canaries_in(dump: bytes) -> list[str]:
    text_ = dump.decode("utf-8", "replace")
    digits = "".join(ch for ch in text_ if ch.isdigit())
    return [c for c in CANARIES if (c in text_ if not c.isdigit() else c in digits and c in text_)]


def test_personal_data_is_sealed_erased_by_destroying_keys_and_exported(
    hub: HubRuntime, db_url: str, tmp_path: Path
) -> None:
    subject = [_send(hub, _order(n, customer=SUBJECT, street=STREET)) for n in (9001, 9002)]
    update = _send(hub, _order(9001, customer=SUBJECT, street=STREET + "bis", revision=2))
    _send(hub, _order(9003, customer={"email": OTHER_EMAIL, "firstName": "Otra"}, street="Calle Real 1"))

    # At rest: nothing personal in clear anywhere in the database, yet every reader sees it whole.
    assert _canaries_in(_dump(db_url, tmp_path / "before.sql")) == []
    engine = hub.database.engine
    with engine.connect() as conn:
        order = queries.find_order(conn, system="pyxis", external_id="PX-SYN-000009001")
        assert order is not None and order.content["customer"]["email"] == SUBJECT["email"]
        stored = queries.event(conn, subject[0])
        assert stored is not None and b"Zebulonia" in stored.raw_body

    _check_export(hub, subject, update)
    _check_erasure(hub, db_url, tmp_path)


def _check_export(hub: HubRuntime, subject: list[uuid.UUID], update: uuid.UUID) -> None:
    """Export (art. 15): everything, opened."""
    engine = hub.database.engine
    document = export(engine, Criteria(emails=(SUBJECT["email"].upper(),)), actor=cli_actor(), reason="T-1")
    assert {o["external_order_id"] for o in document["orders"]} == {"PX-SYN-000009001", "PX-SYN-000009002"}
    assert {e["event_id"] for e in document["events"]} == {str(i) for i in (*subject, update)}
    assert all("Zebulonia" in e["raw_body"]["text"] for e in document["events"])
    versions = next(o for o in document["orders"] if o["external_order_id"] == "PX-SYN-000009001")["versions"]
    assert [v["version_no"] for v in versions] == [1, 2]
    assert versions[1]["order"]["service_address"]["line1"] == STREET + "bis"


def _check_erasure(hub: HubRuntime, db_url: str, tmp_path: Path) -> None:
    """Dry run lists and changes nothing; the erasure leaves no canary and keeps the facts."""
    engine = hub.database.engine
    outbox = Outbox(hub.schemas)
    criteria = Criteria(phones=("+34699111222",))
    dry = erase(engine, criteria, actor=cli_actor(), reason="", dry_run=True, outbox=outbox)
    assert dry.dry_run and len(dry.subject.orders) == 2 and sum(dry.subject.events.values()) == 3
    with engine.connect() as conn:
        assert conn.execute(select(privacy_erasures)).first() is None

    done = erase(engine, criteria, actor=cli_actor(), reason="GDPR-REQ-1", dry_run=False, outbox=outbox)
    assert done.erasure_id is not None

    assert _canaries_in(_dump(db_url, tmp_path / "after.sql")) == []
    with engine.connect() as conn:
        erased = queries.find_order(conn, system="pyxis", external_id="PX-SYN-000009001")
        assert erased is not None and erased.erased
        assert "email" not in erased.content["customer"]  # facts only
        assert erased.content["totals"]["gross_amount"]["amount"] and erased.status  # facts stay
        first = (
            conn.execute(
                text(
                    "SELECT event_id FROM sales_system_integration_events WHERE order_key = 'PX-SYN-000009001'"
                )
            )
            .scalars()
            .first()
        )
        assert isinstance(first, uuid.UUID)
        row = queries.event(conn, first)
        assert row is not None and row.raw_body is None and row.raw_body_erased
        kept = queries.find_order(conn, system="pyxis", external_id="PX-SYN-000009003")
        assert kept is not None and kept.content["customer"]["email"] == OTHER_EMAIL
        register = conn.execute(select(privacy_erasures)).one()
        assert register.reason == "GDPR-REQ-1" and register.orders == 2 and register.events == 3
        assert "699" not in json.dumps(register.criteria) + json.dumps(register.detail)
        erasure_events = conn.execute(
            select(event_outbox).where(event_outbox.c.kind == "customer_erased")
        ).all()
        assert len(erasure_events) == 1
        port = personal_data(conn)
        assert port.open_order(conn, erased.hub_order_id, erased.content, b"x", uuid.uuid4()) is ERASED
    # Once erased, the subject can no longer be found by what identified it: nothing to export.
    assert export(engine, criteria, actor=cli_actor(), reason="")["orders"] == []

    # A later event of an erased order is a new subject under a new key, never the erased one.
    _send(
        hub,
        _order(
            9002, customer={"email": "nuevo@example.com", "firstName": "Nuevo"}, street="Otra 2", revision=3
        ),
    )
    with engine.connect() as conn:
        again = queries.find_order(conn, system="pyxis", external_id="PX-SYN-000009002")
        assert again is not None and not again.erased
        assert again.content["customer"]["email"] == "nuevo@example.com"
        versions_ = queries.order_versions(conn, again.hub_order_id)
        assert [v.erased for v in versions_] == [True, False]


def test_rows_written_in_clear_are_sealed_by_the_resumable_command(hub: HubRuntime) -> None:
    event_id = _send(hub, _order(9100, customer=SUBJECT, street=STREET))
    engine = hub.database.engine
    with engine.begin() as conn:  # as a release before encryption at rest wrote it
        order = queries.find_order(conn, system="pyxis", external_id="PX-SYN-000009100")
        assert order is not None
        whole = json.dumps(order.content)
        stored = queries.event(conn, event_id)
        assert stored is not None
        conn.execute(
            text(
                "UPDATE sales_system_integration_events SET raw_body = :b, data_key_id = NULL WHERE event_id = :e"
            ),
            {"b": stored.raw_body, "e": event_id},
        )
        for table in ("service_orders", "service_order_versions"):
            conn.execute(
                text(f"UPDATE {table} SET content = CAST(:c AS jsonb), personal = NULL, data_key_id = NULL"),
                {"c": whole},
            )
        assert clear_counts(conn)["events"] == 1
    result = CliRunner().invoke(
        app,
        ["privacy", "encrypt", "--batch", "1"],
        env={"SALESHUB_DATABASE__URL": str(engine.url.render_as_string(hide_password=False))},
    )
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        assert clear_counts(conn) == {"events": 0, "orders": 0, "versions": 0, "outbox": 0}
        assert seal_batch(conn, "events", 10) == 0
        again = queries.find_order(conn, system="pyxis", external_id="PX-SYN-000009100")
        assert again is not None and again.content["customer"]["email"] == SUBJECT["email"]
        raw = conn.execute(select(service_orders.c.content)).scalar_one()
        assert "email" not in raw["customer"]


def test_a_body_altered_in_the_database_fails_its_event_and_holds_up_no_other(hub: HubRuntime) -> None:
    engine = hub.database.engine
    first = hub.recorder.record(*_admitted(hub, _order(9200, customer=SUBJECT, street=STREET)))
    second = hub.recorder.record(*_admitted(hub, _order(9201, customer=SUBJECT, street=STREET)))
    with engine.begin() as conn:  # one byte of the sealed body changed behind the hub's back
        conn.execute(
            text(
                "UPDATE sales_system_integration_events SET raw_body = "
                "set_byte(raw_body, 20, get_byte(raw_body, 20) # 1) WHERE event_id = :e"
            ),
            {"e": first.event_id},
        )
    hub.processor().drain()
    with engine.connect() as conn:
        outcomes = event_outcomes(conn, [first.event_id, second.event_id])
        failed = queries.event(conn, second.event_id)
    assert outcomes[second.event_id].status.value == "mapped"
    assert outcomes[first.event_id].status.value == "failed"
    assert "altered" in json.dumps(outcomes[first.event_id].errors)
    assert failed is not None


def _admitted(hub: HubRuntime, body: bytes) -> tuple[InboundEvent, Any]:
    event = InboundEvent("pyxis", "webhook", body, "application/json")
    return event, admit(event, hub.adapters["pyxis"])


def test_a_missing_or_wrong_key_file_is_refused_never_replaced(db_url: str, tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "master.key"
    first = open_hub(db_url, privacy={"key_file": str(key_file)})
    try:
        event_id = _send(first, _order(9300, customer=SUBJECT, street=STREET))
    finally:
        first.close()
    key_file.rename(tmp_path / "elsewhere.key")  # lost, or a typo in the setting
    refused = open_hub(db_url, privacy={"key_file": str(key_file)})
    try:
        with refused.database.engine.connect() as conn, pytest.raises(KeyServiceError) as missing:
            queries.event(conn, event_id)
        assert "was not found" in str(missing.value) and str(key_file) in str(missing.value)
        assert not key_file.exists(), "the accidental key is not left behind"
        receipt = refused.recorder.record
        with pytest.raises(KeyServiceError):  # nothing is recorded under an accidental key
            receipt(*_admitted(refused, _order(9301, customer=SUBJECT, street=STREET)))
    finally:
        refused.close()
    other = tmp_path / "other.key"
    LocalMasterKey(other)  # a valid key file, but not this database's
    wrong = open_hub(db_url, privacy={"key_file": str(other)})
    try:
        with wrong.database.engine.connect() as conn, pytest.raises(KeyServiceError) as mismatch:
            queries.event(conn, event_id)
        assert "is not the one that wrapped" in str(mismatch.value)
    finally:
        wrong.close()
    (tmp_path / "elsewhere.key").rename(key_file)  # restored: everything opens again
    back = open_hub(db_url, privacy={"key_file": str(key_file)})
    try:
        with back.database.engine.connect() as conn:
            row = queries.event(conn, event_id)
        assert row is not None and b"Zebulonia" in row.raw_body
    finally:
        back.close()


def test_a_body_put_back_in_clear_must_match_its_recorded_hash(hub: HubRuntime) -> None:
    event_id = _send(hub, _order(9400, customer=SUBJECT, street=STREET))
    with hub.database.engine.begin() as conn:  # forged: clear bytes, the key's id removed
        conn.execute(
            text(
                "UPDATE sales_system_integration_events SET raw_body = :b, data_key_id = NULL "
                "WHERE event_id = :e"
            ),
            {"b": b'{"forged": true}', "e": event_id},
        )
    with hub.database.engine.connect() as conn, pytest.raises(KeyServiceError, match="altered or replaced"):
        queries.event(conn, event_id)


def test_an_event_refused_before_any_order_is_found_by_its_body_and_erased(hub: HubRuntime) -> None:
    body = _order(9500, customer=SUBJECT, street=STREET).replace(
        b'"channel": "STORE"', b'"channel": "NOWHERE"'
    )
    receipt = ingest(hub, InboundEvent("pyxis", "webhook", body, "application/json"))
    assert receipt.status.value == "quarantined"  # no order stored: not in the blind index
    engine = hub.database.engine
    outbox = Outbox(hub.schemas)
    by_phone = Criteria(phones=("+34 699-111-222",))  # separators as people type them
    dry = erase(engine, by_phone, actor=cli_actor(), reason="", dry_run=True, outbox=outbox)
    assert dry.subject.orders == [] and list(dry.subject.unmapped_events) == [receipt.event_id]
    exported = export(engine, Criteria(emails=(SUBJECT["email"],)), actor=cli_actor(), reason="T-2")
    assert [e["event_id"] for e in exported["events"]] == [str(receipt.event_id)]
    done = erase(engine, by_phone, actor=cli_actor(), reason="GDPR-REQ-2", dry_run=False, outbox=outbox)
    assert done.erasure_id is not None
    with engine.connect() as conn:
        row = queries.event(conn, receipt.event_id)
    assert row is not None and row.raw_body_erased


@pytest.mark.parametrize(
    ("criteria", "problem"),
    [
        (Criteria(phones=("612 999 001",)), "E.164"),
        (Criteria(phones=("abc-not-a-phone",)), "E.164"),
        (Criteria(emails=("",)), "not an e-mail address"),
        (Criteria(emails=("not an email",)), "not an e-mail address"),
        (Criteria(customer_refs=("  ",)), "empty"),
        (Criteria(), "name the subject"),
    ],
)
def test_a_value_that_cannot_match_is_refused_not_answered_with_nothing_found(
    hub: HubRuntime, criteria: Criteria, problem: str
) -> None:
    with pytest.raises(InvalidRequestError, match=problem):
        erase(
            hub.database.engine,
            criteria,
            actor=cli_actor(),
            reason="",
            dry_run=True,
            outbox=Outbox(hub.schemas),
        )


def test_a_loyalty_card_number_finds_its_orders(hub: HubRuntime) -> None:
    _send(hub, _order(9600, customer=SUBJECT, street=STREET))
    found = erase(
        hub.database.engine,
        Criteria(customer_refs=(f"LMC-CANARY-{SUBJECT['id']}",)),
        actor=cli_actor(),
        reason="",
        dry_run=True,
        outbox=Outbox(hub.schemas),
    )
    assert [o.external_order_id for o in found.subject.orders] == ["PX-SYN-000009600"]
    assert found.subject.matched[found.subject.orders[0].hub_order_id] == ["customer_ref"]


def test_the_commands_say_erased_and_write_an_export_only_where_they_can(
    hub: HubRuntime, tmp_path: Path
) -> None:
    _send(hub, _order(9700, customer=SUBJECT, street=STREET))
    env = {"SALESHUB_DATABASE__URL": hub.database.engine.url.render_as_string(hide_password=False)}
    runner = CliRunner()
    args = ["privacy", "export", "--email", SUBJECT["email"], "--reason", "T-3"]
    missing = runner.invoke(app, [*args, "--output", str(tmp_path / "nodir" / "x.json")], env=env)
    assert missing.exit_code == 2 and "cannot write the export" in missing.output
    with hub.database.engine.connect() as conn:
        recorded = conn.execute(text("SELECT count(*) FROM operator_actions WHERE action = 'privacy.export'"))
        assert recorded.scalar_one() == 0, "an export that was not written is not recorded as made"
    target = tmp_path / "subject.json"
    target.write_text("old")
    target.chmod(0o644)
    written = runner.invoke(app, [*args, "--output", str(target)], env=env)
    assert written.exit_code == 0, written.output
    assert target.stat().st_mode & 0o777 == 0o600 and json.loads(target.read_text())["orders"]
    erased = runner.invoke(app, ["privacy", "erase", "--email", SUBJECT["email"], "--reason", "T-3"], env=env)
    assert erased.exit_code == 0 and "matched by email" in erased.output, erased.output
    shown = runner.invoke(app, ["orders", "show", "pyxis:PX-SYN-000009700"], env=env)
    assert "personal data erased" in shown.output and "erased" in shown.output.split("Versions")[1]


def test_the_lineage_of_an_erased_order_says_erased_and_shows_nothing(hub: HubRuntime) -> None:
    _send(hub, _order(9800, customer=SUBJECT, street=STREET))
    engine = hub.database.engine
    erase(
        engine,
        Criteria(emails=(SUBJECT["email"],)),
        actor=cli_actor(),
        reason="T-4",
        dry_run=False,
        outbox=Outbox(hub.schemas),
    )
    with engine.connect() as conn:
        order = queries.find_order(conn, system="pyxis", external_id="PX-SYN-000009800")
        assert order is not None
        lineage = explain_version(
            conn, RevisionCatalogs(), order.hub_order_id, show_personal=True, reason="T-4"
        )
        by_event = explain_event(
            conn, RevisionCatalogs(), order.last_event_id, show_personal=True, reason="T-4"
        )
    for found in (lineage, by_event):
        assert found.reason == ERASED_REASON and not found.personal_shown and not found.fields


def test_the_register_lists_erasures_and_applies_them_again_by_order(hub: HubRuntime, tmp_path: Path) -> None:
    _send(hub, _order(9900, customer=SUBJECT, street=STREET))
    _send(hub, _order(9901, customer={"email": OTHER_EMAIL, "firstName": "Otra"}, street="Calle Real 1"))
    env = {"SALESHUB_DATABASE__URL": hub.database.engine.url.render_as_string(hide_password=False)}
    runner = CliRunner()
    erased = runner.invoke(
        app, ["privacy", "erase", "--email", SUBJECT["email"], "--reason", "DSAR-9"], env=env
    )
    assert erased.exit_code == 0, erased.output
    listed = runner.invoke(app, ["privacy", "erasures", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    register = tmp_path / "erasures.json"
    register.write_text(listed.output)
    [entry] = json.loads(listed.output)
    assert entry["reason"] == "DSAR-9" and entry["criteria"] == ["email"]
    assert SUBJECT["email"] not in listed.output  # never the values
    again = runner.invoke(app, ["privacy", "erase", "--from-register", str(register), "--dry-run"], env=env)
    assert "pyxis:PX-SYN-000009900" in again.output and "already erased" in again.output, again.output
    by_order = runner.invoke(
        app, ["privacy", "erase", "--order", "pyxis:PX-SYN-000009901", "--dry-run"], env=env
    )
    assert "pyxis:PX-SYN-000009901" in by_order.output and "matched by order" in by_order.output
    bad = runner.invoke(app, ["privacy", "erase", "--order", "nocolon", "--dry-run"], env=env)
    assert bad.exit_code == 2 and "SYSTEM:EXTERNAL_ORDER_ID" in bad.output
