"""Retention on the real embedded PostgreSQL: raw bodies, personal data of closed orders, order facts.

Orders go in through the recorder and the processor like any; their age is then set back with SQL
(``updated_at`` of the order, ``received_at`` of its events), as years of operation would leave it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, text
from typer.testing import CliRunner

from saleshub.actions.events import cli_actor
from saleshub.actions.retention import RetentionReport, apply_retention, plan_from
from saleshub.cli import app
from saleshub.errors import InvalidRequestError
from saleshub.platform.settings import RetentionSettings
from saleshub.publish.outbox import Outbox
from saleshub.receive.intake import InboundEvent
from saleshub.runtime import HubRuntime
from saleshub.store import queries
from saleshub.store.tables import (
    event_outbox,
    integration_events,
    operator_actions,
    personal_index,
    privacy_erasures,
    service_order_versions,
    service_orders,
)
from tests.integration.conftest import ingest
from tests.support.synthetic import pyxis_event

# number: (status, years since the last change, days since its events were received)
ORDERS = {
    9501: ("COMPLETED", 4, 200),  # personal data past its period; facts kept
    9502: ("IN_PROGRESS", 12, 200),  # open: never touched, however old (its raw body is)
    9503: ("CANCELLED", 11, 200),  # past the legal period: deleted, its events stay
    9504: ("COMPLETED", 1, 10),  # recent: nothing
}


def _external(number: int) -> str:
    return f"PX-SYN-{number:09d}"


def _send(hub: HubRuntime, number: int, revision: int = 1) -> None:
    event: dict[str, Any] = json.loads(pyxis_event(number, revision=revision, notes=f"revision {revision}"))
    event["order"]["customer"]["email"] = f"cliente.{number}@retention.example"
    body = json.dumps(event, ensure_ascii=False).encode()
    receipt = ingest(hub, InboundEvent("pyxis", "webhook", body, "application/json"))
    assert receipt.status.value == "mapped", receipt


def _age(conn: Connection) -> None:
    for number, (status, years, days) in ORDERS.items():
        conn.execute(
            text(
                "UPDATE service_orders SET status = :status, "
                "updated_at = now() - make_interval(years => :years) WHERE external_order_id = :order"
            ),
            {"status": status, "years": years, "order": _external(number)},
        )
        conn.execute(
            text(
                "UPDATE sales_system_integration_events SET received_at = now() - make_interval(days => :days) "
                "WHERE order_key = :order"
            ),
            {"days": days, "order": _external(number)},
        )


def _state(conn: Connection) -> dict[str, object]:
    """Everything retention could change, to compare before and after a dry run."""
    return {
        "bodies": conn.execute(select(func.count(integration_events.c.raw_body))).scalar_one(),
        "events": conn.execute(select(func.count()).select_from(integration_events)).scalar_one(),
        "orders": conn.execute(
            select(service_orders.c.external_order_id, service_orders.c.erased_at).order_by(
                service_orders.c.external_order_id
            )
        ).all(),
        "versions": conn.execute(select(func.count()).select_from(service_order_versions)).scalar_one(),
        "index": conn.execute(select(func.count()).select_from(personal_index)).scalar_one(),
        "keys": conn.execute(text("SELECT count(*) FROM data_keys")).scalar_one(),
        "erasures": conn.execute(select(func.count()).select_from(privacy_erasures)).scalar_one(),
        "outbox": conn.execute(select(func.count()).select_from(event_outbox)).scalar_one(),
        "actions": conn.execute(select(func.count()).select_from(operator_actions)).scalar_one(),
    }


def _order(conn: Connection, number: int) -> Any:
    return queries.find_order(conn, system="pyxis", external_id=_external(number))


def test_retention_dry_run_then_run_applies_each_policy_and_a_second_run_does_nothing(
    hub: HubRuntime,
) -> None:
    for number in ORDERS:
        _send(hub, number)
    _send(hub, 9501, revision=2)  # two versions, two events
    engine = hub.database.engine
    with engine.begin() as conn:
        _age(conn)
        before = _state(conn)
    outbox = Outbox(hub.schemas)
    plan = plan_from(RetentionSettings(), batch_size=1)  # defaults: 180 days, 3 years, 10 years

    # The dry run counts per policy and system, and changes nothing.
    dry = apply_retention(engine, plan, actor=cli_actor(), outbox=outbox, dry_run=True)
    assert dry.counts == {
        "raw_bodies": {"pyxis": 4},
        "personal_data": {"pyxis": 2},
        "facts": {"pyxis": 1},
    }
    longer = plan_from(RetentionSettings(raw_body_days_by_system={"pyxis": 365}))
    assert (
        apply_retention(engine, longer, actor=cli_actor(), outbox=outbox, dry_run=True).counts["raw_bodies"]
        == {}
    )
    cli = CliRunner().invoke(
        app,
        ["db", "retention", "--dry-run", "--raw-body-days", "pyxis=150"],
        env={"SALESHUB_DATABASE__URL": engine.url.render_as_string(hide_password=False)},
    )
    assert cli.exit_code == 0, cli.output
    assert "raw bodies after 180 days (pyxis 150)" in cli.output and "dry run: nothing changed" in cli.output
    for line, count in (
        ("raw bodies", 4),
        ("personal data of closed orders", 2),
        ("closed orders deleted", 1),
    ):
        assert re.search(rf"{line}[^\n]*\W pyxis\W+{count}\W", cli.output), cli.output
    with engine.connect() as conn:
        assert _state(conn) == before

    # The run: one transaction per order (batch 1), each policy applied.
    done = apply_retention(engine, plan, actor=cli_actor(), outbox=outbox, dry_run=False)
    assert done.counts == dry.counts
    _check_applied(hub, done)

    # A second run right after finds nothing left to do and records nothing.
    with engine.connect() as conn:
        after = _state(conn)
    again = apply_retention(engine, plan, actor=cli_actor(), outbox=outbox, dry_run=False)
    assert again.counts == {"raw_bodies": {}, "personal_data": {}, "facts": {}} and not again.erasure_ids
    with engine.connect() as conn:
        assert _state(conn) == after

    # A later event is a new subject (its period starts again); one of a deleted order records it anew.
    _send(hub, 9501, revision=3)
    _send(hub, 9503, revision=2)
    with engine.connect() as conn:
        for number in (9501, 9503):
            order = _order(conn, number)
            assert order is not None and not order.erased
            assert order.content["customer"]["email"] == f"cliente.{number}@retention.example"
    assert apply_retention(engine, plan, actor=cli_actor(), outbox=outbox, dry_run=True).counts == {
        "raw_bodies": {},
        "personal_data": {},
        "facts": {},
    }


def _check_applied(hub: HubRuntime, report: RetentionReport) -> None:
    engine = hub.database.engine
    with engine.connect() as conn:
        bodies: dict[str, bool] = dict(
            conn.execute(
                text(
                    "SELECT order_key, bool_and(raw_body IS NULL AND raw_body_purged_at IS NOT NULL) "
                    "FROM sales_system_integration_events GROUP BY order_key"
                )
            ).all()
        )
        assert bodies == {
            _external(9501): True,
            _external(9502): True,
            _external(9503): True,
            _external(9504): False,
        }

        closed = _order(conn, 9501)  # personal data erased, facts stay
        assert closed is not None and closed.erased and closed.status == "COMPLETED"
        assert "email" not in closed.content["customer"]
        assert closed.content["totals"]["gross_amount"]["amount"]
        assert all(v.erased for v in queries.order_versions(conn, closed.hub_order_id))
        assert not conn.execute(
            select(personal_index).where(personal_index.c.hub_order_id == closed.hub_order_id)
        ).first()

        for number in (9502, 9504):  # open however old, or closed recently: kept whole
            kept = _order(conn, number)
            assert kept is not None and not kept.erased
            assert kept.content["customer"]["email"] == f"cliente.{number}@retention.example"

        assert _order(conn, 9503) is None  # deleted with its versions; its events stay
        deleted_events = conn.execute(
            select(integration_events.c.event_id, integration_events.c.hub_order_id).where(
                integration_events.c.order_key == _external(9503)
            )
        ).all()
        assert len(deleted_events) == 1 and deleted_events[0].hub_order_id is not None
        assert not conn.execute(
            select(service_order_versions).where(
                service_order_versions.c.hub_order_id == deleted_events[0].hub_order_id
            )
        ).first()
        assert not conn.execute(
            select(personal_index).where(personal_index.c.hub_order_id == deleted_events[0].hub_order_id)
        ).first()
        opened = queries.event(conn, deleted_events[0].event_id)
        assert opened is not None and opened.raw_body is None

        register = conn.execute(select(privacy_erasures).order_by(privacy_erasures.c.erasure_id)).all()
        assert [(r.subject, r.reason, r.orders) for r in register] == [("retention", "retention", 1)] * 2
        assert [r.erasure_id for r in register] == report.erasure_ids
        erased_orders = {o["external_order_id"] for r in register for o in r.detail["orders"]}
        assert erased_orders == {_external(9501), _external(9503)}
        announced = conn.execute(
            select(event_outbox.c.message_key).where(event_outbox.c.kind == "customer_erased")
        ).scalars()
        assert sorted(announced) == sorted(f"erasure_{i}" for i in report.erasure_ids)
        action = conn.execute(
            select(operator_actions.c.detail).where(operator_actions.c.action == "db.retention")
        ).scalar_one()
        assert action["facts"] == {"pyxis": 1} and action["erasures"] == report.erasure_ids


class _StopError(Exception):
    """Stands for a run stopped half way (a deadline, a crash)."""


def test_a_run_stopped_half_way_keeps_its_whole_batches_and_the_next_run_goes_on(hub: HubRuntime) -> None:
    numbers = (9601, 9602, 9603)
    for number in numbers:
        _send(hub, number)
    engine = hub.database.engine
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE service_orders SET status = 'COMPLETED', updated_at = now() - interval '5 years'")
        )
    plan = plan_from(RetentionSettings(), batch_size=1)
    outbox = Outbox(hub.schemas)

    def stop_after_one(policy: str, _count: int) -> None:
        if policy == "personal_data":
            raise _StopError

    with pytest.raises(_StopError):
        apply_retention(
            engine, plan, actor=cli_actor(), outbox=outbox, dry_run=False, progress=stop_after_one
        )
    with engine.connect() as conn:
        assert sorted(_order(conn, n).erased for n in numbers) == [False, False, True]
        assert conn.execute(select(func.count()).select_from(privacy_erasures)).scalar_one() == 1

    rest = apply_retention(engine, plan, actor=cli_actor(), outbox=outbox, dry_run=False)
    assert rest.counts["personal_data"] == {"pyxis": 2} and len(rest.erasure_ids) == 2
    with engine.connect() as conn:
        assert all(_order(conn, n).erased for n in numbers)
        assert conn.execute(select(func.count()).select_from(privacy_erasures)).scalar_one() == 3


def test_a_period_for_a_system_the_hub_does_not_have_is_refused(hub: HubRuntime) -> None:
    plan = plan_from(RetentionSettings(), raw_body_days_by_system={"pyxsi": 30})  # a typo of pyxis
    with pytest.raises(InvalidRequestError, match="no sales system 'pyxsi'"):
        apply_retention(
            hub.database.engine, plan, actor=cli_actor(), outbox=Outbox(hub.schemas), dry_run=True
        )
    env = {"SALESHUB_DATABASE__URL": hub.database.engine.url.render_as_string(hide_password=False)}
    refused = CliRunner().invoke(app, ["db", "retention", "--dry-run", "--raw-body-days", "bogus=3"], env=env)
    assert refused.exit_code == 2 and "no sales system 'bogus'" in refused.output
