"""Reconciliation against a source's API: the loopback ERP (tests/support/source_server.py), a real PostgreSQL.

The hub polls the source, then the source changes behind its back (an order it never sent, a newer
revision, the same revision with other content, a record its mapping refuses); a run reading the
source's API finds exactly those, ``heal`` records every record whose content the hub lacks through
the record path (the missing and stale ones, and the changes that kept their change time), and after
the processor drains a second run finds only the record the mapping refuses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from typer.testing import CliRunner

from reconciliation.engine import reconcile
from reconciliation.model import Kind, Window
from reconciliation.reports.data import build_report
from reconciliation.rules import load_rules
from reconciliation.schedule import EXECUTOR, JOB_ID
from saleshub.actions.reconciliation_wiring import api_reader, heal_from_source, nightly, schedule_nightly
from saleshub.cli import app
from saleshub.platform.secrets import EnvSecretStore
from saleshub.receive.polling import build_poller
from saleshub.runtime import HubRuntime
from saleshub.services import Services
from saleshub.store import queries
from tests.integration.conftest import MAPPINGS, SECRETS, open_hub
from tests.support.source_server import PASSWORD, USERNAME, SourceServer, erp_time
from tests.support.synthetic import erp_order

pytestmark = pytest.mark.integration

WINDOW = Window(start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 11, 2, tzinfo=UTC))
SOURCE_SECRETS = {
    "SALESHUB_SECRET_SOURCE_ERP_USERNAME": USERNAME,
    "SALESHUB_SECRET_SOURCE_ERP_PASSWORD": PASSWORD,
}
FAST = {"page_size": 4, "timeout_seconds": 2.0, "backoff_seconds": 0.05, "requests_per_second": 1000}


def at(minutes: int) -> str:
    """A change time inside the window, as the ERP writes it."""
    return erp_time(WINDOW.start + timedelta(hours=8, minutes=minutes))


def polled_systems(server: SourceServer) -> dict[str, Any]:
    return {"erp": {"base_url": server.url, **FAST}}


@pytest.fixture
def source() -> Iterator[SourceServer]:
    with SourceServer() as server:
        yield server


@pytest.fixture
def erp_hub(db_url: str, source: SourceServer) -> Iterator[HubRuntime]:
    hub = open_hub(db_url, pollers={"systems": polled_systems(source), "reconcile_at": "03:15"})
    hub.secrets = EnvSecretStore({**SECRETS, **SOURCE_SECRETS})
    yield hub
    hub.close()


def seed(hub: HubRuntime, source: SourceServer) -> None:
    """Ten orders polled into the hub, then four differences the hub has not seen."""
    for number in range(1, 11):
        source.erp.put(erp_order(number, updated_at=at(number)))
    polled = build_poller(hub, "erp").run()
    assert polled.outcome == "completed" and polled.recorded == 10, polled.error
    hub.processor().drain()
    source.erp.put(erp_order(11, updated_at=at(11)))  # never sent: missing in the hub
    source.erp.update(2, updated_at=at(30))  # revision 2: the hub is behind
    other = erp_order(3, updated_at=at(3))  # the same revision, another requested window
    other["RequestedArrivalDate"], other["RequestedShipDate"] = "2026-12-01T07:00:00+00:00", None
    source.erp.put(other)
    unmappable = erp_order(12, updated_at=at(12))
    del unmappable["TransactionOn"]  # ordered_at is required: the mapping refuses it
    source.erp.put(unmappable)


def counts(hub: HubRuntime, run_id: Any) -> dict[str, int]:
    with hub.database.engine.connect() as conn:
        return build_report(conn, run_id).run.counts


def run_api(hub: HubRuntime) -> Any:
    reader = api_reader(hub, "erp")
    rules = load_rules(MAPPINGS).for_system("erp")
    return reconcile(hub.database.engine, reader, WINDOW, rules), reader


def test_the_api_manifest_finds_every_seeded_difference_and_heal_cures_missing_and_stale(
    erp_hub: HubRuntime, source: SourceServer
) -> None:
    seed(erp_hub, source)
    run_id, reader = run_api(erp_hub)
    assert reader.records_read == 12 and reader.problems == 1
    assert counts(erp_hub, run_id) == {
        Kind.MISSING_IN_HUB: 1,
        Kind.HUB_STALE: 1,
        Kind.CONTENT_MISMATCH: 1,
        Kind.INVALID_MANIFEST_ROW: 1,
    }
    with erp_hub.database.engine.connect() as conn:
        findings = {f.external_order_id: f for f in build_report(conn, run_id).findings}
    assert findings["SYN000000011"].kind == Kind.MISSING_IN_HUB
    assert (findings["SYN000000002"].kind, findings["SYN000000002"].source_version) == (Kind.HUB_STALE, 2)
    assert {d.field for d in findings["SYN000000003"].field_differences} == {
        "requested_window.start",
        "requested_window.end",
    }
    assert findings["SYN000000012"].kind == Kind.INVALID_MANIFEST_ROW
    assert "cannot be mapped (map)" in (findings["SYN000000012"].detail or "")
    assert "ordered_at" in (findings["SYN000000012"].detail or "")

    healed = heal_from_source(erp_hub, reader, run_id, WINDOW)
    assert (healed.wanted, healed.recorded, healed.repeated, healed.not_found) == (2, 2, 0, [])
    # 3 (another window under the same time and revision) and 12 (never sent) are records the hub
    # lacks although no finding asks for them: recorded too (12 is quarantined when processed).
    assert healed.unreported == 2
    again = heal_from_source(erp_hub, reader, run_id, WINDOW)
    assert (again.recorded, again.repeated, again.unreported) == (0, 2, 0)  # the same keys: nothing twice
    erp_hub.processor().drain()
    assert build_poller(erp_hub, "erp").run().recorded == 0  # the poller's keys too

    second, _ = run_api(erp_hub)
    assert counts(erp_hub, second) == {Kind.INVALID_MANIFEST_ROW: 1}


def test_the_nightly_job_reconciles_every_polled_system_against_its_api(
    erp_hub: HubRuntime, source: SourceServer
) -> None:
    seed(erp_hub, source)
    job = nightly(erp_hub, clock=lambda: datetime(2026, 11, 2, 3, 15, tzinfo=UTC))
    outcome = job()
    assert set(outcome) == {"erp"}
    assert counts(erp_hub, outcome["erp"])[Kind.MISSING_IN_HUB] == 1
    with erp_hub.database.engine.connect() as conn:
        run = build_report(conn, outcome["erp"]).run
    assert (run.window, run.manifest) == (WINDOW, "api erp")

    scheduler = BackgroundScheduler()
    assert schedule_nightly(erp_hub, scheduler) is not None
    trigger = str(scheduler.get_job(JOB_ID).trigger)
    assert "hour='3'" in trigger and "minute='15'" in trigger


def test_serve_schedules_the_nightly_run_beside_the_pollers(erp_hub: HubRuntime) -> None:
    services = Services.start(erp_hub, pollers=True)
    try:
        assert services.scheduler is not None
        job = services.scheduler.get_job(JOB_ID)
        assert job is not None and job.executor == EXECUTOR
    finally:
        services.stop()


def test_reconcile_run_from_the_api_with_heal_on_the_command_line(
    db_url: str, source: SourceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = open_hub(db_url, pollers={"systems": polled_systems(source)})
    hub.secrets = EnvSecretStore({**SECRETS, **SOURCE_SECRETS})
    try:
        seed(hub, source)
    finally:
        hub.close()
    for name, value in {
        "SALESHUB_DATABASE__URL": db_url,
        "SALESHUB_MAPPINGS_DIR": str(MAPPINGS),
        "SALESHUB_POLLERS__SYSTEMS": json.dumps(polled_systems(source)),
        "COLUMNS": "250",
        **SOURCE_SECRETS,
    }.items():
        monkeypatch.setenv(name, value)
    span = ["--from", "2026-11-01T00:00:00Z", "--to", "2026-11-02T00:00:00Z"]
    result = CliRunner().invoke(app, ["reconcile", "run", "erp", *span, "--heal"])
    assert result.exit_code == 0, result.output
    assert "healed: 2 of 2 missing or stale orders recorded again" in result.output
    assert "2 more records whose content the hub lacked" in result.output

    refused = CliRunner().invoke(app, ["reconcile", "run", "pyxis", *span])
    assert refused.exit_code == 2
    assert "SALESHUB_POLLERS__SYSTEMS has no entry 'pyxis'" in refused.output


def test_heal_records_changes_that_kept_their_change_time(erp_hub: HubRuntime, source: SourceServer) -> None:
    """Oracle keeps LastUpdateDate to the second: a change within it keeps the time the hub holds."""
    for number in range(1, 5):
        source.erp.put(erp_order(number, updated_at=at(number)))
    assert build_poller(erp_hub, "erp").run().recorded == 4
    erp_hub.processor().drain()
    # The poller missed both (its cursor had moved on): a new revision under the same time, and a
    # change of only a field the rules ignore (notes), same time, same revision: not even reported.
    source.erp.put(erp_order(2, revision=2, updated_at=at(2), notes="revision 2"))
    source.erp.put(erp_order(3, updated_at=at(3), notes="changed within the second"))
    run_id, reader = run_api(erp_hub)
    assert counts(erp_hub, run_id) == {Kind.HUB_STALE: 1}

    healed = heal_from_source(erp_hub, reader, run_id, WINDOW)
    assert (healed.wanted, healed.recorded, healed.repeated, healed.unreported) == (1, 1, 0, 1)
    erp_hub.processor().drain()
    with erp_hub.database.engine.connect() as conn:
        notes = {  # notes are personal data: read through the store, which opens them
            key: order.content.get("notes")
            for key in ("SYN000000002", "SYN000000003")
            if (order := queries.find_order(conn, system="erp", external_id=key)) is not None
        }
    assert (notes["SYN000000002"], notes["SYN000000003"]) == ("revision 2", "changed within the second")
    again = heal_from_source(erp_hub, reader, run_id, WINDOW)
    assert (again.recorded, again.repeated, again.unreported) == (0, 1, 0)
    second, _ = run_api(erp_hub)
    assert counts(erp_hub, second) == {}
