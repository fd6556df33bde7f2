"""Reconciliation's pure parts: the stewards' rules file, field differences, charts, the schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

import reconciliation
from reconciliation.fields import field_differences, parse_order
from reconciliation.reports import svg
from reconciliation.rules import FieldRules, load_rules
from reconciliation.schedule import JOB_ID, NightlyReconciliation, add_nightly_job, previous_day
from saleshub.errors import MappingLoadError
from tests.conftest import MAPPINGS
from tests.support.orders import canonical_order


def test_exported_names() -> None:
    assert reconciliation.__all__ == sorted(reconciliation.__all__)
    for name in reconciliation.__all__:
        assert getattr(reconciliation, name) is not None


def test_the_repository_rules_load() -> None:
    rules = load_rules(MAPPINGS)
    assert rules.for_system("pyxis").amount_tolerance == Decimal("0.01")
    assert rules.for_system("erp").ignore_fields == ["notes"]
    assert rules.for_system("unknown-system") == rules.defaults


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "reconciliation.yaml").write_text(
        "version: 1\n"
        "defaults:\n"
        "  amount_tolerance: '-1'\n"
        "  colour: blue\n"
        "systems:\n"
        "  tempo:\n"
        "    status_equivalences: [[CONFIRMED, BOOKED]]\n"
        "    ignore_fields: [customer.phone, no_such_field]\n",
        encoding="utf-8",
    )
    with pytest.raises(MappingLoadError) as caught:
        load_rules(tmp_path)
    found = {(issue.line, issue.key.split(".")[-1]) for issue in caught.value.issues}
    assert (3, "amount_tolerance") in found
    assert (4, "colour") in found
    assert any(
        line == 7 and "status_equivalences" in issue.key
        for issue in caught.value.issues
        for line in [issue.line]
    )
    assert any(issue.line == 8 and "no_such_field" in issue.message for issue in caught.value.issues)
    assert all(
        str(issue).startswith(f"{tmp_path.name}/reconciliation.yaml:") for issue in caught.value.issues
    )


def test_a_duplicate_key_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    (tmp_path / "reconciliation.yaml").write_text("version: 1\nversion: 1\n", encoding="utf-8")
    with pytest.raises(MappingLoadError, match="line 1"):
        load_rules(tmp_path)


def test_layout_differences_are_not_field_differences() -> None:
    hub = canonical_order("PYX-1")
    document = json.loads(hub.model_dump_json())
    document["lines"].reverse()
    # The same instant in another offset.
    document["ordered_at"] = hub.ordered_at.astimezone(timezone(timedelta(hours=-5))).isoformat()
    source = parse_order(document)
    assert not isinstance(source, str)
    assert field_differences(hub, source, FieldRules()) == []
    assert hub.fingerprint() == source.fingerprint()


def test_rules_tolerate_what_the_stewards_declared() -> None:
    hub = canonical_order("PYX-1")
    document = json.loads(hub.model_dump_json())
    document["totals"]["gross_amount"]["amount"] = str(
        Decimal(document["totals"]["gross_amount"]["amount"]) + Decimal("0.01")
    )
    document["status"] = "SCHEDULED"
    document["customer"]["phone"] = "+34600000000"
    source = parse_order(document)
    assert not isinstance(source, str)
    strict = {d.field: d for d in field_differences(hub, source, FieldRules())}
    assert set(strict) == {"totals.gross_amount", "status", "customer.phone"}
    assert strict["customer.phone"].hub == strict["customer.phone"].source == "(personal data)"
    lenient = FieldRules(
        amount_tolerance=Decimal("0.01"),
        status_equivalences=[["CONFIRMED", "SCHEDULED"]],  # type: ignore[list-item]
        ignore_fields=["customer"],
    )
    assert field_differences(hub, source, lenient) == []


def test_an_invalid_source_order_says_why() -> None:
    problem = parse_order({"source_system": "pyxis"})
    assert isinstance(problem, str)
    assert problem.startswith("not a valid canonical order:")


def test_charts_name_no_outside_address() -> None:
    markup = svg.bar_chart("t", [("a", 3, "#000000"), ("b", 0, "#111111")])
    markup += svg.stacked_bars("t", {"ES": {"missing_in_hub": 2}})
    markup += svg.trend_chart("t", [("1", 1), ("2", 5)])
    markup += svg.error_gauge("t", 0.02, 0.01)
    assert "http" not in markup
    assert markup.count("<svg") == 4


def test_nightly_job_is_scheduled_for_the_previous_utc_day() -> None:
    assert previous_day(datetime(2026, 11, 30, 2, 30, tzinfo=UTC)).start == datetime(2026, 11, 29, tzinfo=UTC)
    scheduler = BackgroundScheduler(timezone=UTC)
    job = NightlyReconciliation(engine=None, rules=load_rules(MAPPINGS), readers={})  # type: ignore[arg-type]
    add_nightly_job(scheduler, job, hour=3, minute=15)
    scheduled = scheduler.get_job(JOB_ID)
    assert scheduled is not None
    assert str(scheduled.trigger) == "cron[hour='3', minute='15']"
    assert job() == {}
