"""Field lineage over real PostgreSQL: every golden sample of every system is recorded and mapped by
the hub, then each stored version is mapped again from its raw body with its stored revision."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from typer.testing import CliRunner

from saleshub.actions.events import replay_events
from saleshub.cli import app
from saleshub.mapping import coercions as co
from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.revision import MappingFiles
from saleshub.mapping.tracing import trace
from saleshub.receive.intake import InboundEvent
from saleshub.receive.replay import ReplaySelection
from saleshub.runtime import HubRuntime
from saleshub.stewards.deployment import deploy
from saleshub.stewards.lineage import NOT_REPRODUCIBLE, RevisionCatalogs, explain_event, explain_version
from saleshub.stewards.lineage_uses import crosswalk_uses, source_path_uses
from saleshub.store import queries
from saleshub.store.audit import Actor
from saleshub.store.tables import service_order_versions, service_orders
from tests.conftest import MAPPINGS, SAMPLES
from tests.integration.conftest import ingest, open_hub

pytestmark = pytest.mark.integration

MEDIA = {".json": "application/json", ".xml": "application/xml"}
WHY = "lineage test"


def _deploy(hub_url: str, directory: Path, message: str) -> int:
    files = MappingFiles.read(directory)
    hub = open_hub(hub_url, mappings=directory)
    try:
        number = deploy(hub.database.engine, files, files.catalog(), message)
    finally:
        hub.close()
    assert number is not None
    return number


def _samples(system: str | None = None) -> list[Path]:
    return sorted(
        p for p in SAMPLES.glob(f"{system or '*'}/*") if p.suffix in MEDIA and ".expected" not in p.name
    )


def _send(hub: HubRuntime, path: Path) -> Any:
    return ingest(hub, InboundEvent(path.parent.name, "webhook", path.read_bytes(), MEDIA[path.suffix]))


def _at(content: Any, target: str) -> Any:
    for part in target.replace("[", ".[").split("."):
        if part.startswith("["):
            content = content[int(part[1:-1])]
        elif part:
            content = content[part]
    return content


@pytest.fixture
def deployed(db_url: str) -> HubRuntime:
    assert _deploy(db_url, MAPPINGS, "as shipped") == 1
    return open_hub(db_url)


@pytest.fixture
def draft(tmp_path: Path) -> Path:
    """The mappings with the channel row of STORE moved to the end and given another channel."""
    target = tmp_path / "draft"
    shutil.copytree(MAPPINGS, target)
    channels = target / "crosswalks" / "channels.csv"
    lines = channels.read_text(encoding="utf-8").splitlines()
    store = next(line for line in lines if line.startswith("IN_STORE,"))
    lines.remove(store)
    lines.append(store.replace("IN_STORE,", "PARTNER,", 1))
    channels.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def test_every_field_of_every_golden_sample_is_traced_to_its_stored_value(deployed: HubRuntime) -> None:
    hub = deployed
    try:
        outcomes = {path: _send(hub, path) for path in _samples()}
        catalogs = RevisionCatalogs()
        traced = 0
        with hub.database.engine.connect() as conn:
            hub_orders = conn.execute(select(service_order_versions.c.hub_order_id).distinct()).scalars()
            versions = [version for order in hub_orders for version in queries.order_versions(conn, order)]
            assert len({v.hub_order_id for v in versions}) >= 20
            for version in versions:
                lineage = explain_version(
                    conn,
                    catalogs,
                    version.hub_order_id,
                    version=version.version_no,
                    show_personal=True,
                    reason=WHY,
                )
                assert lineage.reproducible, (lineage.order, lineage.reason, lineage.differences)
                assert lineage.revision == 1 and lineage.mapping_file
                for found in lineage.fields:
                    assert found.rule.startswith(lineage.mapping_file + ":")
                    if found.group:
                        continue
                    if found.value is not None:
                        assert found.value == _at(version.content, found.target), (
                            lineage.order,
                            found.target,
                        )
                        traced += 1
                    for step in found.steps:  # a row shown is the row whose code was looked up
                        if step.kind == "read" and step.source is not None and step.has_value:
                            xml = lineage.mapping_file.startswith("tempo/")
                            assert (step.line is not None) == xml, (lineage.order, found.target, step)
                        if step.kind == "lookup" and step.row is not None:
                            assert step.row_cells is not None and step.value in step.row_cells.values()
                            code = step.text.split("'")[1]
                            assert code in step.row_cells.values()
            assert traced > 500
            quarantined = [p for p, o in outcomes.items() if o.status.value == "quarantined"]
            assert len(quarantined) == 3
            for path in quarantined:
                lineage = explain_event(conn, catalogs, outcomes[path].event_id)
                assert lineage.reproducible, (path.name, lineage.reason)
                assert lineage.errors and lineage.fields[-1].errors, path.name
                assert all(not f.errors for f in lineage.fields[:-1])  # the trace ends at the first failure
    finally:
        hub.close()


def test_personal_values_are_masked_unless_asked_for_with_a_reason(deployed: HubRuntime) -> None:
    hub = deployed
    try:
        outcome = _send(hub, SAMPLES / "pyxis/01_es_in_store_created.json")
        with hub.database.engine.connect() as conn:
            masked = explain_version(conn, RevisionCatalogs(), outcome.hub_order_id, fields=["customer"])
            shown = explain_version(
                conn,
                RevisionCatalogs(),
                outcome.hub_order_id,
                fields=["customer"],
                show_personal=True,
                reason=WHY,
            )
        name = {f.target: f for f in masked.fields}["customer.last_name"]
        assert name.masked and name.value == "***"
        assert all(s.value == "***" for s in name.steps if s.has_value and s.value is not None)
        assert "***" not in json.dumps(shown.as_json())
        assert {f.target: f for f in masked.fields}["customer.kind"].masked is False

        company = _send(hub, SAMPLES / "pyxis/07_fr_partner_company_multiline.json")
        with hub.database.engine.connect() as conn:
            kinds = [
                explain_version(
                    conn, RevisionCatalogs(), company.hub_order_id, fields=["customer.kind"], **how
                )
                for how in ({}, {"show_personal": True, "reason": WHY})
            ]
        # The kind is COMPANY because a company name is there: the name read for the condition is masked.
        reads = [[s for s in k.fields[0].steps if s.kind == "read"] for k in kinds]
        assert kinds[0].fields[0].value == "COMPANY" and reads[0][0].source == "order.customer.companyName"
        assert reads[0][0].value == "***" and reads[1][0].value not in ("***", None)
    finally:
        hub.close()


def test_the_row_shown_is_the_row_used_and_follows_a_draft(deployed: HubRuntime, draft: Path) -> None:
    hub = deployed
    try:
        outcome = _send(hub, SAMPLES / "pyxis/01_es_in_store_created.json")
        with hub.database.engine.connect() as conn:
            lineage = explain_version(
                conn, RevisionCatalogs(), outcome.hub_order_id, fields=["sales_channel"]
            )
        (step,) = [s for f in lineage.fields for s in f.steps if s.kind == "lookup"]
        assert (step.crosswalk, step.row, step.value) == ("crosswalks/channels.csv", 2, "IN_STORE")
        assert step.row_cells is not None and step.row_cells["pyxis"] == "STORE"

        document = json.loads((SAMPLES / "pyxis/01_es_in_store_created.json").read_bytes())
        _, _, traces = trace(MappingCatalog.load(draft).get("pyxis").root, document)
        (moved,) = [s for t in traces if t.target == "sales_channel" for s in t.steps if s.kind == "lookup"]
        assert (moved.row, moved.value) == (7, "PARTNER")
        assert moved.row_cells is not None and moved.row_cells["canonical"] == "PARTNER"
    finally:
        hub.close()


def test_a_version_is_traced_with_the_revision_that_produced_it(
    db_url: str, deployed: HubRuntime, draft: Path
) -> None:
    first = _send(deployed, SAMPLES / "pyxis/01_es_in_store_created.json")
    deployed.close()
    assert _deploy(db_url, draft, "STORE is a partner channel") == 2
    hub = open_hub(db_url)
    try:
        second = _send(hub, SAMPLES / "pyxis/05_es_in_store_updated.json")
        assert second.hub_order_id == first.hub_order_id and second.order_version_no == 2
        with hub.database.engine.connect() as conn:
            catalogs = RevisionCatalogs()
            old = explain_version(conn, catalogs, first.hub_order_id, version=1, fields=["sales_channel"])
            new = explain_version(conn, catalogs, first.hub_order_id, fields=["sales_channel"])
        assert (old.revision, new.revision) == (1, 2)
        assert old.reproducible and new.reproducible
        rows = [
            [(s.row, s.value) for f in x.fields for s in f.steps if s.kind == "lookup"] for x in (old, new)
        ]
        assert rows == [[(2, "IN_STORE")], [(7, "PARTNER")]]
    finally:
        hub.close()


def test_a_transform_changed_since_storage_is_not_reproducible(
    deployed: HubRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = deployed
    try:
        outcome = _send(hub, SAMPLES / "pyxis/01_es_in_store_created.json")
        # This hub version's collapse_spaces would also upper-case: the stored city was "Madrid".
        original = co.TRANSFORMS["collapse_spaces"]
        monkeypatch.setitem(co.TRANSFORMS, "collapse_spaces", lambda text: original(text).upper())
        with hub.database.engine.connect() as conn:
            lineage = explain_version(conn, RevisionCatalogs(), outcome.hub_order_id)
        assert not lineage.reproducible and not lineage.fields
        assert lineage.reason.startswith(NOT_REPRODUCIBLE)
        changed = {d.target: (d.stored, d.now) for d in lineage.differences}
        assert changed["service_address.city"] == ("Madrid", "MADRID")
    finally:
        hub.close()


def test_the_commands_explain_and_uses(
    deployed: HubRuntime, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = deployed
    try:
        for path in _samples("pyxis"):
            _send(hub, path)
    finally:
        hub.close()
    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    run = CliRunner()
    result = run.invoke(
        app, ["orders", "explain", "pyxis:PX-ES-2026-000123", "sales_channel", "customer.last_name"]
    )
    assert result.exit_code == 0, result.output
    assert "crosswalks/channels.csv:2" in result.output and "pyxis/order.yaml:14" in result.output, (
        result.output
    )
    assert '"***"' in result.output
    result = run.invoke(app, ["orders", "explain", "pyxis:PX-ES-2026-000123", "--json", "--version", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["reproducible"] is True
    result = run.invoke(app, ["orders", "explain", "pyxis:PX-ES-2026-000123", "--show-personal-data"])
    assert result.exit_code == 2 and "--reason" in result.output

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            (quarantined,) = conn.execute(
                text("SELECT event_id FROM sales_system_integration_events WHERE status = 'quarantined'")
            ).scalars()
            by_row = crosswalk_uses(conn, RevisionCatalogs(), "channels", 2, last=100)
            by_path = source_path_uses(conn, RevisionCatalogs(), "order.channel", last=100)
            orders = conn.execute(
                select(service_orders.c.sales_channel, service_orders.c.source_system)
            ).all()
    finally:
        engine.dispose()
    # Every Pyxis order sold in a store looks STORE up in row 2; the Pyxis orders all read order.channel.
    in_store = sum(1 for o in orders if o.sales_channel == "IN_STORE" and o.source_system == "pyxis")
    assert {(u.mapping, u.target) for u in by_row.fields} >= {("pyxis/order", "sales_channel")}
    assert by_row.depending == by_row.by_field["sales_channel"] == in_store > 0
    assert by_path.depending == by_path.examined == len(orders)
    result = run.invoke(
        app, ["orders", "explain", "--event", str(quarantined), "sales_channel", "service_type"]
    )
    assert result.exit_code == 0, result.output
    assert "quarantined" in result.output and "is not in crosswalks/channels.csv" in result.output, (
        result.output
    )
    result = run.invoke(app, ["mappings", "uses", "channels", "2", "--last", "50"])
    assert result.exit_code == 0, result.output
    assert (
        "sales_channel" in result.output and f"{in_store} of the last {len(orders)} orders" in result.output
    )
    result = run.invoke(app, ["mappings", "uses", "--source-path", "order.channel", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["orders_depending"] == len(orders)


def test_a_replayed_event_is_traced_from_its_original_bytes(
    db_url: str, deployed: HubRuntime, tmp_path: Path
) -> None:
    """A replay keeps no bytes of its own (they stay with the original): its lineage, and that of the
    version it makes, read the original's, as an operator would after the tour's fix and replay."""
    sample = (SAMPLES / "pyxis/01_es_in_store_created.json").read_bytes()
    body = sample.replace(b'"channel": "STORE"', b'"channel": "TERMINAL"')
    assert body != sample
    quarantined = ingest(deployed, InboundEvent("pyxis", "webhook", body, "application/json"))
    assert quarantined.status == "quarantined"
    actor = Actor("test", WHY)
    replay_events(deployed, ReplaySelection(event_id=quarantined.event_id), actor)
    with deployed.database.engine.connect() as conn:
        query = text("SELECT event_id FROM sales_system_integration_events WHERE replay_of = :root")
        (replay_id,) = conn.execute(query, {"root": quarantined.event_id}).scalars()
        traced = explain_event(conn, RevisionCatalogs(), replay_id)
    assert traced.fields and "retention" not in (traced.reason or ""), traced.reason
    deployed.close()

    fixed = tmp_path / "fixed"
    shutil.copytree(MAPPINGS, fixed)
    with (fixed / "crosswalks" / "channels.csv").open("a", encoding="utf-8") as handle:
        handle.write("IN_STORE,TERMINAL,,,In-store terminal\n")
    assert _deploy(db_url, fixed, "TERMINAL is an in-store channel") == 2
    hub = open_hub(db_url)
    try:
        replay_events(hub, ReplaySelection(event_id=replay_id), actor)
        with hub.database.engine.connect() as conn:
            order = conn.execute(
                select(service_orders.c.hub_order_id).where(
                    service_orders.c.external_order_id == "PX-ES-2026-000123"
                )
            ).scalar_one()
            lineage = explain_version(conn, RevisionCatalogs(), order, fields=["sales_channel"])
        assert lineage.reproducible, lineage.reason
        assert lineage.revision == 2
    finally:
        hub.close()
