"""A Peppol ``OrderCancellation`` names its order by reference alone: the hub cancels the stored order.

The official examples of Peppol BIS Ordering 3 (the plug-in's ``tests/official``): the
``OrderChange`` restates the whole order ``Order-1`` (received first, it creates it), the
``OrderCancellation`` references ``Order-1`` and carries no address, lines or totals. Processed by a
real processor against PostgreSQL, the cancellation becomes the order's next version, the stored
content in status ``CANCELLED`` with the cancellation's note and time, and an ``order_cancelled``
event in the outbox. A cancellation of an order the hub does not hold is quarantined saying so.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from saleshub_peppol import PeppolAdapter
from sqlalchemy import select

from canonical.model import hub_order_id_for
from saleshub.mapping.packaged import read_directory
from saleshub.mapping.revision import MappingFiles
from saleshub.receive.intake import InboundEvent, admit
from saleshub.runtime import HubRuntime, register_systems
from saleshub.store.tables import event_outbox, integration_events, service_order_versions
from tests.conftest import ROOT
from tests.integration.conftest import open_hub

pytestmark = pytest.mark.integration

PLUGIN = ROOT / "plugins" / "saleshub-peppol"
OFFICIAL = PLUGIN / "tests" / "official"
ORDER_1 = hub_order_id_for("peppol", "Order-1")


@pytest.fixture
def hub(db_url: str) -> Iterator[HubRuntime]:
    """A hub with the Peppol adapter over the plug-in's mapping and its tests' crosswalks."""
    runtime = open_hub(db_url)
    files = read_directory(PLUGIN / "src" / "saleshub_peppol" / "mappings") | read_directory(
        PLUGIN / "tests" / "mappings"
    )
    runtime.adapters["peppol"] = PeppolAdapter(MappingFiles(files).catalog())
    with runtime.database.engine.begin() as conn:
        register_systems(conn, [PeppolAdapter])
    yield runtime
    runtime.close()


def receive(hub: HubRuntime, example: str, body: bytes | None = None) -> uuid.UUID:
    """Record the official example ``example`` (or ``body``) as a webhook event and process the queue."""
    body = (OFFICIAL / example).read_bytes() if body is None else body
    event = InboundEvent("peppol", "webhook", body, "application/xml")
    [receipt] = hub.recorder.record_batch([(event, admit(event, hub.adapters["peppol"]))])
    hub.processor().drain()
    return receipt.event_id


def event_row(hub: HubRuntime, event_id: uuid.UUID) -> dict[str, object]:
    with hub.database.engine.connect() as conn:
        row = conn.execute(select(integration_events).where(integration_events.c.event_id == event_id)).one()
    return dict(row._mapping)


def test_the_official_cancellation_cancels_the_order_it_references(hub: HubRuntime) -> None:
    changed = receive(hub, "OrderChange_Example.xml")
    assert event_row(hub, changed)["status"] == "mapped"
    cancelled = receive(hub, "OrderCancellation_Example.xml")
    row = event_row(hub, cancelled)
    assert (row["status"], row["errors"], row["order_version_no"]) == ("mapped", None, 2)
    with hub.database.engine.connect() as conn:
        versions = conn.execute(
            select(service_order_versions)
            .where(service_order_versions.c.hub_order_id == ORDER_1)
            .order_by(service_order_versions.c.version_no)
        ).all()
        kinds = (
            conn.execute(select(event_outbox.c.kind).where(event_outbox.c.event_id == cancelled))
            .scalars()
            .all()
        )
    first, last = versions[0]._mapping, versions[-1]._mapping
    assert [v.status for v in versions] == ["RECEIVED", "CANCELLED"]
    assert last["event_id"] == cancelled
    assert last["content"]["cancellation_reason"] == "With reference to phone call"
    assert last["content"]["source_updated_at"].startswith("2022-02-01T00:00:00")
    # Everything else is the stored order's: the cancellation restates none of it.
    kept = {k: v for k, v in last["content"].items() if k not in {"status", "cancellation_reason"}}
    assert kept == {k: v for k, v in first["content"].items() if k not in {"status", "cancellation_reason"}}
    assert last["mapping"] == first["mapping"]
    assert kinds == ["order_cancelled"]


def test_a_cancellation_of_an_order_the_hub_does_not_hold_is_quarantined(hub: HubRuntime) -> None:
    cancelled = receive(hub, "OrderCancellation_Example.xml")
    row = event_row(hub, cancelled)
    assert row["status"] == "quarantined"
    errors = row["errors"]
    assert isinstance(errors, dict)
    assert errors["error"] == "UnknownOrderError"
    assert "'Order-1'" in errors["message"]
    assert "replay this event" in errors["message"]
    with hub.database.engine.connect() as conn:
        held = conn.execute(
            select(service_order_versions.c.version_no).where(
                service_order_versions.c.hub_order_id == ORDER_1
            )
        ).all()
    assert held == []


def test_the_official_cancellation_of_the_official_order_example(hub: HubRuntime) -> None:
    # The official Order example is order "34"; the official cancellation, its reference set to it.
    ordered = receive(hub, "Order_Example.xml")
    assert event_row(hub, ordered)["status"] == "mapped"
    official = (OFFICIAL / "OrderCancellation_Example.xml").read_bytes()
    reference = b"<cac:OrderReference>\n    <cbc:ID>Order-1</cbc:ID>"
    assert reference in official
    body = official.replace(reference, reference.replace(b"Order-1", b"34"))
    cancelled = receive(hub, "", body)
    row = event_row(hub, cancelled)
    assert (row["status"], row["order_version_no"]) == ("mapped", 2)
    with hub.database.engine.connect() as conn:
        statuses = (
            conn.execute(
                select(service_order_versions.c.status)
                .where(service_order_versions.c.hub_order_id == hub_order_id_for("peppol", "34"))
                .order_by(service_order_versions.c.version_no)
            )
            .scalars()
            .all()
        )
    assert statuses == ["RECEIVED", "CANCELLED"]
