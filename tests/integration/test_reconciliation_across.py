"""Reconciliation across systems against a real PostgreSQL (and Splink on an in-memory DuckDB).

Seeded data with a known truth: orders the ERP and Pyxis both report (conflicts counted exactly by
kind), customers spread over systems and channels (precision and recall against the seeded people,
families that must stay apart), canary personal data that must never appear unmasked in a report,
and the operational figures.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, text

from canonical.model import ServiceOrder
from reconciliation.across import CONFLICT, reconcile_across
from reconciliation.crossrefs import load_cross_references
from reconciliation.linking.run import link_customers
from reconciliation.model import Window
from reconciliation.operations import operational_figures
from reconciliation.reports.across import (
    build_across_report,
    render_across_csv,
    render_across_html,
    render_across_json,
    render_ops_html,
    render_ops_json,
)
from reconciliation.rules import ReconciliationRules
from reconciliation.schedule import NightlyReconciliation
from saleshub.errors import MappingLoadError
from saleshub.mapping.coercions import to_phone
from saleshub.platform.settings import Settings
from saleshub.store.database import open_database
from saleshub.store.tables import integration_events
from tests.conftest import MAPPINGS
from tests.support.orders import canonical_order, store_orders
from tests.support.people import PLACEHOLDER_EMAIL, SyntheticRecord, generate, pair_scores

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
WINDOW = Window(start=NOW - timedelta(hours=1), end=NOW + timedelta(hours=1))
REFERENCES = load_cross_references(MAPPINGS)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    database = open_database(Settings(database={"url": db_url, "pool_size": 4}))  # type: ignore[arg-type]
    yield database.engine
    database.close()


# --- cross-system orders -----------------------------------------------------------------------------


def pyxis(n: int, **changes: Any) -> ServiceOrder:
    return canonical_order(f"PYX-ES-{n:04d}", **changes)


def erp(n: int, refers_to: str, source: str = "PYXIS", **changes: Any) -> ServiceOrder:
    metadata = {"source_transaction_system": source, "source_transaction_number": f" {refers_to} "}
    return canonical_order(
        f"{100_000 + n}", system="erp", sales_channel="B2B", system_metadata=metadata, **changes
    )


def base() -> dict[str, Any]:
    return json.loads(pyxis(0).model_dump_json())


def money(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


def seed_cross_system(engine: Engine) -> None:
    """Pyxis orders and the ERP's reports of them (see EXPECTED_CONFLICTS for what differs)."""
    document = base()
    gross = document["totals"]["gross_amount"]["amount"]
    orders: list[ServiceOrder] = []
    for n in range(1, 12):
        orders.append(pyxis(n))
    # The same: three identical, one a cent off (within 0.01), one CONFIRMED vs SCHEDULED (equivalent).
    orders += [erp(n, f"PYX-ES-{n:04d}") for n in (1, 2, 3)]
    cent_off = {**document["totals"], "gross_amount": money(f"{float(gross) + 0.01:.2f}")}
    orders.append(erp(4, "PYX-ES-0004", totals=cent_off))
    orders.append(erp(5, "pyx-es-0005", status="SCHEDULED"))  # key compared in upper case
    # Conflicts: two amounts beyond the tolerance, two statuses, a missing line, a date.
    for n in (6, 7):
        orders.append(
            erp(n, f"PYX-ES-{n:04d}", totals={**document["totals"], "gross_amount": money("999.00")})
        )
    orders += [
        erp(8, "PYX-ES-0008", status="CANCELLED", cancellation_reason="Customer"),
        erp(9, "PYX-ES-0009", status="COMPLETED"),
    ]
    orders.append(erp(10, "PYX-ES-0010", lines=document["lines"][:1]))
    orders.append(erp(11, "PYX-ES-0011", ordered_at="2026-11-21T09:14:37+01:00"))
    # Not matched: the ERP order came from another source system; a reference to no order.
    orders.append(erp(12, "PYX-ES-0001", source="OPS", status="CANCELLED"))
    orders.append(erp(13, "PYX-ES-9999", status="CANCELLED"))
    store_orders(engine, orders)


EXPECTED_CONFLICTS = {"amount": 2, "status": 2, "lines": 1, "dates": 1}


def test_cross_system_conflicts_have_exact_counts_and_show_both_sides(engine: Engine) -> None:
    seed_cross_system(engine)
    first = reconcile_across(engine, REFERENCES, WINDOW, now=NOW)
    second = reconcile_across(engine, REFERENCES, WINDOW, now=NOW + timedelta(minutes=5))
    with engine.connect() as conn:
        report = build_across_report(conn, second)
        first_report = build_across_report(conn, first)
    assert report.run.stats["cross_system_pairs"] == 11
    assert report.run.counts == {CONFLICT: 6}
    assert report.conflicts_by_category == EXPECTED_CONFLICTS
    by_order = {c.right.external_order_id: c for c in report.conflicts}
    assert set(by_order) == {f"PYX-ES-{n:04d}" for n in range(6, 12)}
    amount = by_order["PYX-ES-0006"]
    assert (amount.left.system, amount.left.external_order_id, amount.right.system) == (
        "erp",
        "100006",
        "pyxis",
    )
    assert [(d.field, d.left, d.right) for d in amount.differences] == [
        ("totals.gross_amount", "999.00 EUR", "489.90 EUR")
    ]
    assert amount.reference == "pyxis_order"
    assert amount.reference_value == "PYX-ES-0006"
    status = by_order["PYX-ES-0008"]
    assert [(d.field, d.left, d.right) for d in status.differences] == [("status", "CANCELLED", "CONFIRMED")]
    line = by_order["PYX-ES-0010"]
    assert [(d.field, d.left, d.right, d.rule) for d in line.differences] == [
        ("lines[2]", None, line.differences[0].right, "present on one side only")
    ]
    # Open since the first run: carried over.
    assert {c.first_seen_at for c in report.conflicts} == {first_report.run.started_at}


def test_the_nightly_job_runs_across_systems(engine: Engine) -> None:
    seed_cross_system(engine)
    job = NightlyReconciliation(
        engine=engine,
        rules=ReconciliationRules(version=1),
        readers={},
        references=REFERENCES,
        clock=lambda: NOW + timedelta(days=1),
    )
    outcome = job()
    with engine.connect() as conn:
        report = build_across_report(conn, uuid.UUID(outcome["cross-system"]))
    assert report.run.counts == {CONFLICT: 6}
    assert report.run.stats["customer_records_linked"] == 24


def test_cross_references_are_checked_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "cross_references.yaml").write_text(
        "version: 1\nreferences:\n  po:\n    systems:\n      erp: {field: nowhere.po}\n"
        "      Tempo: {field: external_order_id}\ncompare:\n  fields: [totals, colour]\n",
        encoding="utf-8",
    )
    with pytest.raises(MappingLoadError) as caught:
        load_cross_references(tmp_path)
    issues = {(issue.line, issue.key) for issue in caught.value.issues}
    assert (5, "references.po.systems.erp.field") in issues
    assert (6, "references.po.systems.Tempo.[key]") in issues
    assert (8, "compare.fields") in issues


def test_a_cross_reference_on_a_personal_field_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cross_references.yaml").write_text(
        "version: 1\nreferences:\n  mail:\n    systems:\n      erp: {field: customer.email}\n"
        "      tempo: {field: external_order_id}\n",
        encoding="utf-8",
    )
    with pytest.raises(MappingLoadError) as caught:
        load_cross_references(tmp_path)
    assert "holds personal data" in str(caught.value) and ":5" in str(caught.value)


# --- one customer across systems and channels --------------------------------------------------------


def order_of(record: SyntheticRecord, n: int) -> ServiceOrder:
    customer = dict(record.customer)
    if record.phone_as_entered is not None:  # as the mapping does: any format to E.164
        customer["phone"] = to_phone(record.phone_as_entered, record.country_code)
        assert customer["phone"] == record.customer["phone"]
    return canonical_order(
        f"C-{n:06d}",
        system=record.source_system,
        sales_channel=record.sales_channel,
        country_code=record.country_code,
        customer=customer,
        service_address=record.service_address,
    )


def clusters(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT external_order_id, cluster_id FROM customer_records")).all())


HAND_MADE = [  # (person, system, channel, country, first, last, email, phone as entered, address line)
    (1, "pyxis", "IN_STORE", "ES", "José", "Núñez Gil", None, "612 34 56 78", "Calle Mayor, 5"),
    (1, "pyxis", "PHONE", "ES", "Nunez Gil", "Jose", None, "+34 612-345-678", "C/ Mayor, 5"),
    (2, "tempo", "ONLINE", "PL", "Олександр", "Шевченко", "o.shev@example.pl", None, "ul. Lipowa 3"),
    (2, "pyxis", "MOBILE", "PL", "Oleksandr", "Shevchenko", "o.shev@example.pl", None, "ulica Lipowa 3"),
    # A family: one landline and address, different people.
    (3, "pyxis", "IN_STORE", "ES", "Ana", "García López", None, "915 55 01 23", "Avenida del Sol, 12"),
    (4, "pyxis", "ONLINE", "ES", "Pablo", "García López", None, "+34 915 550 123", "Avda. del Sol, 12"),
    (5, "erp", "B2B", "ES", "Lucía", "García López", "lucia.g@example.es", "915550123", "Av. Sol 12"),
]


def hand_made_orders() -> list[tuple[int, ServiceOrder]]:
    made = []
    for i, (person, system, channel, country, first, last, email, phone, line1) in enumerate(HAND_MADE):
        customer = {"kind": "PERSON", "first_name": first, "last_name": last, "email": email}
        customer["phone"] = None if phone is None else to_phone(phone, country)
        address = {"line1": line1, "postal_code": "28001", "city": "Madrid", "country_code": country}
        order = canonical_order(
            f"H-{i}",
            system=system,
            sales_channel=channel,
            country_code=country,
            customer=customer,
            service_address=address,
        )
        made.append((person, order))
    return made


def test_customers_linked_across_systems_with_precision_and_recall(engine: Engine) -> None:
    """Seeded people, linked in two nightly batches; scored against the truth (pairs in clusters)."""
    records = list(generate(1500, seed=11))
    orders = [order_of(r, n) for n, r in enumerate(records)]
    hand = hand_made_orders()
    cut = len(orders) * 2 // 3
    store_orders(engine, orders[:cut] + [order for _, order in hand[:3]])
    with engine.begin() as conn:
        first = link_customers(conn, run_id=None, at=NOW)
    store_orders(engine, orders[cut:] + [order for _, order in hand[3:]])
    with engine.begin() as conn:
        second = link_customers(conn, run_id=None, at=NOW)
        again = link_customers(conn, run_id=None, at=NOW)
    assert first.records == cut + 3
    assert second.records == len(orders) - cut + len(hand) - 3
    assert second.candidates > 0  # the second batch was scored against known records
    assert again.records == 0  # nothing new: nothing to link
    cluster = clusters(engine)
    precision, recall, predicted, real = pair_scores(
        (r.person, cluster[f"C-{n:06d}"]) for n, r in enumerate(records)
    )
    print(f"linking: precision {precision:.3f}, recall {recall:.3f} ({predicted} / {real} pairs)")
    assert precision >= 0.98
    assert recall >= 0.95
    # Families share a landline and an address but stay apart; swapped, accented, Cyrillic and
    # differently written phones still meet.
    hand_cluster = [cluster[order.external_order_id] for _, order in hand]
    assert hand_cluster[0] == hand_cluster[1]
    assert hand_cluster[2] == hand_cluster[3]
    assert len({hand_cluster[4], hand_cluster[5], hand_cluster[6]}) == 3
    assert hand_cluster[4] not in (hand_cluster[0], hand_cluster[2])


def test_households_sharing_every_contact_and_placeholders_stay_apart(engine: Engine) -> None:
    """Households with one e-mail, phone and address; a placeholder contact given by many people."""
    records = list(generate(1500, seed=23, family_share=0.4, shared_contacts=0.7, placeholders=0.12))
    orders = [order_of(r, n) for n, r in enumerate(records)]
    cut = len(orders) * 2 // 3
    store_orders(engine, orders[:cut])
    with engine.begin() as conn:
        link_customers(conn, run_id=None, at=NOW)
    store_orders(engine, orders[cut:])
    with engine.begin() as conn:
        link_customers(conn, run_id=None, at=NOW)
    cluster = clusters(engine)
    truth = [(r.person, cluster[f"C-{n:06d}"]) for n, r in enumerate(records)]
    precision, recall, predicted, real = pair_scores(truth)
    print(
        f"households and placeholders: precision {precision:.4f}, recall {recall:.4f} ({predicted} / {real})"
    )
    placeholder_people = {r.person for r in records if r.customer["email"] == PLACEHOLDER_EMAIL}
    assert len(placeholder_people) > 150  # more than BLOCK_LIMIT distinct records share it
    people_per_cluster: dict[int, set[int]] = {}
    for person, at in truth:
        people_per_cluster.setdefault(at, set()).add(person)
    assert max(len(people) for people in people_per_cluster.values()) <= 2
    assert precision >= 0.98
    assert recall >= 0.95


def test_different_given_names_veto_a_link_whatever_else_is_shared(engine: Engine) -> None:
    """Two siblings with one e-mail, phone and address; the same person again under a nickname."""
    address = {"line1": "Calle Mayor, 7", "postal_code": "28013", "city": "Madrid", "country_code": "ES"}
    shared = {"kind": "PERSON", "email": "familia.nunez@example.es", "phone": "+34612000111"}
    people = [
        ("S-1", "Lucía", "Núñez Sánchez"),
        ("S-2", "Álvaro", "Núñez Sánchez"),
        ("S-3", "Lucia", "Nunez Sanchez"),
        ("S-4", "José", "Ortega Ruiz"),
        ("S-5", "Pepe", "Ortega Ruiz"),
    ]
    store_orders(
        engine,
        [
            canonical_order(
                key, customer={**shared, "first_name": first, "last_name": last}, service_address=address
            )
            for key, first, last in people
        ],
    )
    with engine.begin() as conn:
        link_customers(conn, run_id=None, at=NOW)
    cluster = clusters(engine)
    assert cluster["S-1"] == cluster["S-3"]
    assert cluster["S-4"] == cluster["S-5"]  # a nickname is the same given name
    assert len({cluster["S-1"], cluster["S-2"], cluster["S-4"]}) == 3


def test_one_customer_with_many_identical_orders_is_scored_once(engine: Engine) -> None:
    customer = {"kind": "PERSON", "first_name": "Ana", "last_name": "Gil", "email": "ana.gil@example.es"}
    store_orders(engine, [canonical_order(f"R-{n}", customer=customer) for n in range(300)])
    with engine.begin() as conn:
        result = link_customers(conn, run_id=None, at=NOW)
    assert result.records == 300 and result.links == 0  # one representative: no pair to score
    assert len(set(clusters(engine).values())) == 1


def test_a_changed_order_is_linked_again_and_a_full_relink_starts_over(engine: Engine) -> None:
    hand = hand_made_orders()
    store_orders(engine, [order for _, order in hand])
    with engine.begin() as conn:
        link_customers(conn, run_id=None, at=NOW)
    changed = hand[1][1].model_copy(update={"source_version": 2, "notes": "second visit"})
    store_orders(engine, [changed])
    with engine.begin() as conn:
        assert link_customers(conn, run_id=None, at=NOW).records == 1
        assert link_customers(conn, run_id=None, at=NOW, full=True).records == len(hand)
    cluster = clusters(engine)
    assert cluster["H-0"] == cluster["H-1"]


# --- personal data in reports -------------------------------------------------------------------------

CANARIES = (
    "Qzxcanaryfirst",
    "Qzxcanarylast",
    "qzx.canary@canarymail.example",
    "+34699123457",
    "Qzxcanarystreet",
)


def canary_orders() -> list[ServiceOrder]:
    first, last, email, phone, street = CANARIES
    customer = {"kind": "PERSON", "first_name": first, "last_name": last, "email": email, "phone": phone}
    address = {"line1": f"Calle {street}, 9", "postal_code": "28999", "city": "Madrid", "country_code": "ES"}
    # Three records that differ (identical records are one record to the model, with no link): the
    # store has it all, online lacks the phone, the phone channel lacks the e-mail.
    variants = [customer, {**customer, "phone": None}, {**customer, "email": None}]
    return [
        canonical_order(f"CAN-{n}", sales_channel=channel, customer=variant, service_address=address)
        for n, (channel, variant) in enumerate(zip(("IN_STORE", "ONLINE", "PHONE"), variants, strict=True))
    ]


def test_reports_show_personal_data_masked_only(engine: Engine) -> None:
    store_orders(engine, canary_orders())
    run_id = reconcile_across(engine, REFERENCES, WINDOW, now=NOW)
    with engine.connect() as conn:
        report = build_across_report(conn, run_id)
        figures = operational_figures(conn, WINDOW, now=NOW)
    assert len(report.links) >= 2  # the canary customer's orders were linked, and are shown
    rendered = {
        "json": render_across_json(report),
        "csv": render_across_csv(report),
        "html": render_across_html(report),
        "ops json": render_ops_json(figures),
        "ops html": render_ops_html(figures),
    }
    needles = [c.lower() for c in CANARIES] + ["canary", "699123457", "23457"]
    for name, text_ in rendered.items():
        for needle in needles:
            assert needle not in text_.lower(), f"{needle!r} unmasked in the {name} report"
    link = next(link for link in report.links if link.evidence["email"]["level"] == "exact")
    for side in (link.left, link.right):  # the store's record and the online one (no phone)
        assert {k: v for k, v in side.masked.items() if k != "phone"} == {
            "name": "Q••• Q•••",
            "email": "q•••@c•••.example",
            "address": "28••• C•••",
        }
    assert {link.left.masked["phone"], link.right.masked["phone"]} == {"+34 ••• ••• •••57", None}
    assert link.evidence["email"]["level"] == "exact"
    assert link.evidence["name"]["level"] == "exact"
    assert float(link.evidence["email"]["weight"]) > 10
    rows = list(csv.DictReader(io.StringIO(rendered["csv"])))
    assert {row["item"] for row in rows} == {"customer_link"}
    assert any("email: exact" in row["evidence"] for row in rows)
    assert "Q••• Q•••" in rendered["html"]


# --- operational figures ------------------------------------------------------------------------------


def test_operational_figures(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_cross_system(engine)
    store_orders(engine, canary_orders())
    # A second version of two ERP orders: updated, besides created, in the window.
    store_orders(engine, [erp(n, f"PYX-ES-{n:04d}", version=2, notes="second version") for n in (1, 2)])
    with engine.begin() as conn:  # the orders' events: processed 3 s after the source's update
        orders = conn.execute(
            text("SELECT last_event_id, source_updated_at, source_system FROM service_orders")
        ).all()
        events = [
            {
                "event_id": event_id,
                "received_at": NOW - timedelta(minutes=1),
                "processed_at": updated + timedelta(seconds=3),
                "source_system": system,
                "transport": "webhook",
                "body_sha256": b"0" * 32,
                "body_size": 2,
                "idempotency_key": str(event_id),
                "status": "mapped",
            }
            for event_id, updated, system in orders
        ]
        events += [
            {**events[0], "event_id": uuid.uuid4(), "idempotency_key": f"q{i}", "status": "quarantined"}
            for i in range(2)
        ]
        conn.execute(insert(integration_events), events)
    run_id = reconcile_across(engine, REFERENCES, WINDOW, now=NOW)
    with engine.connect() as conn:
        figures = build_across_report(conn, run_id).figures
    assert figures is not None
    assert figures.orders_by_channel == {"B2B": 13, "IN_STORE": 12, "ONLINE": 1, "PHONE": 1}
    errors = {e.source_system: e for e in figures.errors}
    assert (errors["pyxis"].received, errors["pyxis"].quarantined) == (16, 2)
    assert errors["pyxis"].above_line
    assert (errors["erp"].received, errors["erp"].quarantined, errors["erp"].above_line) == (13, 0, False)
    row = next(r for r in figures.tenancy if r.source_system == "erp")
    assert (row.country_code, row.bu_code, row.sales_channel, row.orders_created) == (
        "ES",
        "LM-ES",
        "B2B",
        13,
    )
    assert row.orders_updated == 2  # the orders with a version after the first, not every order
    assert row.latency_median_seconds == pytest.approx(3.0)
    assert row.latency_p95_seconds == pytest.approx(3.0)
    assert figures.customers.cross_channel >= 1  # the canary customer: in store, online and by phone
    oldest = {o.source_system: o for o in figures.oldest_open}
    assert oldest["cross-system"].kind == "cross_system_conflict"
    assert oldest["cross-system"].open == 6

    from typer.testing import CliRunner

    from saleshub.cli import app

    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    window = ["--from", WINDOW.start.isoformat(), "--to", WINDOW.end.isoformat()]
    result = runner.invoke(app, ["report", "ops", *window, "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["orders_by_channel"]["B2B"] == 13
    table = runner.invoke(app, ["report", "ops", *window])
    assert table.exit_code == 0, table.output
    assert "Error rate (line 1%)" in table.output
    across = runner.invoke(app, ["reconcile", "across", *window])
    assert across.exit_code == 0, across.output
    assert "of which in conflict" in across.output
    new_run = across.output.split("saleshub reconcile report ")[1].split()[0]
    html = runner.invoke(app, ["reconcile", "report", new_run, "--format", "html"])
    assert html.exit_code == 0, html.output
    assert "Conflicts between systems" in html.output
    assert "Operational figures" in html.output
