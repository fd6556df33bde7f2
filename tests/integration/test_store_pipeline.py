"""The ingestion pipeline against a real PostgreSQL: upsert rules, history, quarantine, replay, impact."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, select, text

from adapters.erp import ErpAdapter
from saleshub.platform.settings import Settings
from saleshub.receive.intake import InboundEvent
from saleshub.receive.recorder import Receipt
from saleshub.receive.replay import Replayer, ReplaySelection, select_events
from saleshub.runtime import HubRuntime
from saleshub.stewards.impact import mapping_impact
from saleshub.store import queries
from saleshub.store.events import Status
from saleshub.store.migrate import include_name, include_object
from saleshub.store.partitions import ensure_partitions, list_partitions
from saleshub.store.retention import RawBodyPosition, purge_raw_bodies
from saleshub.store.tables import integration_events, metadata, service_order_versions, service_orders
from tests.conftest import MAPPINGS
from tests.integration.conftest import ingest, open_hub
from tests.support.synthetic import pyxis_event

pytestmark = pytest.mark.integration


def send(hub: HubRuntime, body: bytes, key: str | None = None, **kwargs: object) -> Receipt:
    event = InboundEvent("pyxis", "webhook", body, "application/json", idempotency_key=key, **kwargs)  # type: ignore[arg-type]
    return ingest(hub, event)


def count(hub: HubRuntime, table: object) -> int:
    with hub.database.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_schema_matches_the_table_metadata(hub: HubRuntime) -> None:
    with hub.database.engine.connect() as conn:
        differences = compare_metadata(
            MigrationContext.configure(
                conn, opts={"include_name": include_name, "include_object": include_object}
            ),
            metadata,
        )
    assert differences == []


def test_start_writes_a_system_row_from_its_adapter(db_url: str) -> None:
    """A system's row and business-unit links come from its adapter's metadata, not a migration."""
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM business_unit_sales_systems WHERE system_code = 'erp'"))
        conn.execute(text("DELETE FROM sales_systems WHERE code = 'erp'"))
        conn.execute(
            text(
                "UPDATE sales_systems SET configuration = configuration || '{\"note\": 1}' WHERE code = 'tempo'"
            )
        )
    settings = Settings(database={"url": db_url}, mappings_dir=MAPPINGS)  # type: ignore[arg-type]
    HubRuntime.open(settings, migrate=True).close()
    with engine.connect() as conn:
        name, countries, configuration = conn.execute(
            text("SELECT name, countries, configuration FROM sales_systems WHERE code = 'erp'")
        ).one()
        units = conn.execute(
            text(
                "SELECT bu_code FROM business_unit_sales_systems WHERE system_code = 'erp' AND NOT is_primary"
            )
        ).scalars()
        tempo = conn.execute(
            text("SELECT configuration FROM sales_systems WHERE code = 'tempo'")
        ).scalar_one()
        linked = sorted(units)
    engine.dispose()
    assert (name, countries) == (ErpAdapter.name, sorted(ErpAdapter.countries))
    assert configuration["transports"] == ["poll", "webhook"] and configuration["channels"] == ["B2B"]
    assert linked == ["BD-ES", "BD-FR", "BD-PL", "LM-ES", "LM-FR", "LM-IT", "LM-PL"]
    assert tempo["note"] == 1 and tempo["transports"] == ["poll", "webhook"]  # an operator's key stays


def test_no_constraint_copies_the_transport_list(hub: HubRuntime) -> None:
    """The transport list has one definition (canonical.enums): a new transport adds no migration."""
    with hub.database.engine.connect() as conn:
        checks = conn.execute(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'sales_system_integration_events'::regclass AND contype = 'c'"
            )
        ).scalars()
        assert not [check for check in checks if "transport" in check]


def test_reference_data_is_seeded(hub: HubRuntime) -> None:
    with hub.database.engine.connect() as conn:
        systems = conn.execute(text("SELECT code FROM sales_systems ORDER BY code")).scalars().all()
        countries = conn.execute(text("SELECT code FROM countries ORDER BY code")).scalars().all()
        primary = conn.execute(
            text("SELECT system_code FROM business_unit_sales_systems WHERE bu_code = 'LM-PL' AND is_primary")
        ).scalar_one()
    assert systems == ["erp", "pyxis", "tempo"]
    assert countries == ["ES", "FR", "IT", "PL"]
    assert primary == "tempo"


def test_create_duplicate_update_stale_cancel(hub: HubRuntime) -> None:
    created = send(hub, pyxis_event(1, revision=1))
    assert (created.status, created.order_version_no) == (Status.MAPPED, 1)

    again = send(hub, pyxis_event(1, revision=1), key="another-delivery")
    assert (again.status, again.order_version_no) == (Status.DUPLICATE, 1)

    updated = send(hub, pyxis_event(1, revision=3, event_type="order.updated", notes="Portal 2"))
    assert (updated.status, updated.order_version_no) == (Status.MAPPED, 2)

    stale = send(hub, pyxis_event(1, revision=2, event_type="order.updated", notes="older news"))
    assert (stale.status, stale.order_version_no) == (Status.STALE, 2)

    cancelled = send(hub, pyxis_event(1, revision=4, event_type="order.cancelled", notes="Portal 2"))
    assert (cancelled.status, cancelled.order_version_no) == (Status.MAPPED, 3)

    with hub.database.engine.connect() as conn:
        order = queries.find_order(conn, system="pyxis", external_id="PX-SYN-000000001")
        assert order is not None
        assert order.status == "CANCELLED"
        assert order.content["notes"] == "Portal 2"
        assert order.source_version == 4
        versions = queries.order_versions(conn, order.hub_order_id)
        events = queries.order_events(conn, order.hub_order_id)
    assert [v.version_no for v in versions] == [1, 2, 3]
    assert [v.status for v in versions] == ["CONFIRMED", "CONFIRMED", "CANCELLED"]
    assert [e.status for e in events] == ["mapped", "duplicate", "mapped", "stale", "mapped"]
    assert all(e.mapping.startswith("pyxis/order@") for e in events)


def test_duplicate_with_newer_revision_still_makes_older_updates_stale(hub: HubRuntime) -> None:
    send(hub, pyxis_event(2, revision=1))
    same_content = send(hub, pyxis_event(2, revision=5, event_type="order.updated"))
    assert same_content.status is Status.DUPLICATE
    older = send(hub, pyxis_event(2, revision=3, event_type="order.updated", notes="in between"))
    assert older.status is Status.STALE


def test_repeated_idempotency_key_returns_the_original_and_writes_nothing(hub: HubRuntime) -> None:
    first = send(hub, pyxis_event(3), key="wh-1")
    before = count(hub, integration_events)
    second = send(hub, pyxis_event(3, notes="changed body, same key"), key="wh-1")
    assert second.repeated and second.event_id == first.event_id
    assert count(hub, integration_events) == before


def test_raw_body_is_kept_byte_for_byte(hub: HubRuntime) -> None:
    body = b'{"eventId": "a", "eventId": "b", "x": "\\u0000"}\r\n'
    result = send(hub, body, key="dup-keys")
    assert result.status is Status.QUARANTINED
    with hub.database.engine.connect() as conn:
        stored = queries.event(conn, result.event_id)
    assert stored is not None
    assert bytes(stored.raw_body) == body
    assert stored.errors["stage"] == "decode"
    assert "appears twice" in stored.errors["message"]


def test_mapping_failure_is_quarantined_with_field_errors(hub: HubRuntime) -> None:
    body = pyxis_event(4).replace(b'"channel": "STORE"', b'"channel": "KIOSK"')
    result = send(hub, body)
    assert result.status is Status.QUARANTINED
    fields = result.errors["fields"]
    assert fields[0]["target"] == "sales_channel"
    assert fields[0]["source"] == "order.channel"
    assert fields[0]["value"] == "'KIOSK'"
    assert count(hub, service_orders) == 0


def test_replay_after_a_mapping_fix(hub: HubRuntime, db_url: str, fixed_mappings: Path) -> None:
    kiosk = [pyxis_event(n).replace(b'"channel": "STORE"', b'"channel": "KIOSK"') for n in range(10, 15)]
    originals = [send(hub, body) for body in kiosk]
    assert {r.status for r in originals} == {Status.QUARANTINED}

    fixed = open_hub(db_url, fixed_mappings)
    try:
        keys = select_events(fixed.database.engine, ReplaySelection(system="pyxis"))
        assert len(keys) == 5
        summary = Replayer(fixed.recorder, fixed.adapters, fixed.processor(), batch_size=2).replay(keys)
        assert summary.statuses == {"mapped": 5}
        assert select_events(fixed.database.engine, ReplaySelection()) == []  # nothing open any more
        with fixed.database.engine.connect() as conn:
            replays = queries.events(conn, status="mapped")
            original = queries.event(conn, originals[0].event_id)
            stored = conn.execute(select(service_orders.c.sales_channel)).scalars().all()
    finally:
        fixed.close()
    assert {r.transport for r in replays} == {"replay"}
    assert {r.replay_of for r in replays} == {o.event_id for o in originals}
    assert original is not None and original.status == "quarantined" and original.superseded_by is not None
    assert stored == ["IN_STORE"] * 5


def test_replaying_a_replay_reads_the_original_body(hub: HubRuntime) -> None:
    first = send(hub, pyxis_event(20))
    replayer = Replayer(hub.recorder, hub.adapters, hub.processor())
    keys = select_events(hub.database.engine, ReplaySelection(event_id=first.event_id))
    replayer.replay(keys)
    with hub.database.engine.connect() as conn:
        replay = queries.events(conn, status="duplicate")[0]
    keys = select_events(hub.database.engine, ReplaySelection(event_id=replay.event_id))
    summary = replayer.replay(keys)
    assert summary.statuses == {"duplicate": 1}
    with hub.database.engine.connect() as conn:
        latest = queries.events(conn, limit=1)[0]
    assert latest.replay_of == first.event_id


def test_impact_of_a_candidate_mapping(hub: HubRuntime, fixed_mappings: Path, tmp_path: Path) -> None:
    for n in range(30, 36):
        send(hub, pyxis_event(n))
    send(hub, pyxis_event(36).replace(b'"channel": "STORE"', b'"channel": "KIOSK"'))
    products = fixed_mappings / "crosswalks" / "products.csv"
    products.write_text(
        products.read_text(encoding="utf-8").replace("SVC-INST-KITCHEN,", "SVC-INST-KITCHEN-V2,"),
        encoding="utf-8",
    )
    candidate = open_hub(hub.settings.database.url.get_secret_value(), fixed_mappings)  # type: ignore[union-attr]
    try:
        with hub.database.engine.connect() as conn:
            report = mapping_impact(conn, hub.adapters["pyxis"], candidate.adapters["pyxis"], last=100)
    finally:
        candidate.close()
    assert report.events == 7
    assert report.changed == 6 and report.newly_mapped == 1 and report.newly_failing == 0
    assert report.field_counts == {"lines.product_code": 6}
    example = report.examples["lines.product_code"][0]
    assert (example.before, example.after) == ("'SVC-INST-KITCHEN'", "'SVC-INST-KITCHEN-V2'")
    assert count(hub, service_orders) == 6  # nothing written


def test_concurrent_updates_of_one_order_get_contiguous_versions(hub: HubRuntime) -> None:
    bodies = [
        pyxis_event(40, revision=r, event_type="order.updated", notes=f"note {r}") for r in range(1, 41)
    ]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda body: send(hub, body), bodies))
    mapped = [r for r in results if r.status is Status.MAPPED]
    with hub.database.engine.connect() as conn:
        versions = (
            conn.execute(select(service_order_versions.c.version_no).order_by("version_no")).scalars().all()
        )
        order = queries.find_order(conn, system="pyxis", external_id="PX-SYN-000000040")
    assert order is not None
    assert versions == list(range(1, len(mapped) + 1))
    assert order.source_version == 40 and order.content["notes"] == "note 40"


def test_events_land_in_monthly_partitions_and_retention_keeps_the_rows(hub: HubRuntime) -> None:
    old = datetime(2025, 1, 15, tzinfo=UTC)
    with hub.database.engine.begin() as conn:
        assert ensure_partitions(conn, now=old, ahead=0) == ["sales_system_integration_events_202501"]
    send(hub, pyxis_event(50), received_at=old)
    send(hub, pyxis_event(51))
    with hub.database.engine.begin() as conn:
        assert queries.default_partition_rows(conn) == 0
        names = [info.name for info in list_partitions(conn)]
        assert "sales_system_integration_events_202501" in names
        purged, _ = purge_raw_bodies(
            conn, "pyxis", datetime.now(UTC) - timedelta(days=180), RawBodyPosition(), limit=10
        )
    assert purged == 1
    with hub.database.engine.connect() as conn:
        rows = conn.execute(
            select(
                integration_events.c.received_at, integration_events.c.raw_body, integration_events.c.status
            ).order_by(integration_events.c.received_at)
        ).all()
    assert [(r.raw_body is None, r.status) for r in rows] == [(True, "mapped"), (False, "mapped")]


def test_events_list_json_is_serialisable(hub: HubRuntime) -> None:
    send(hub, pyxis_event(60))
    with hub.database.engine.connect() as conn:
        row = queries.events(conn)[0]
    assert json.loads(json.dumps(dict(row._mapping), default=str))["status"] == "mapped"
