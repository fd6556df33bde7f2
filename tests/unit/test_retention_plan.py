"""The retention plan: settings, a run's overrides, and the periods refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from saleshub.actions.retention import RetentionReport, plan_from
from saleshub.errors import InvalidRequestError
from saleshub.platform.settings import RetentionSettings


def test_a_runs_options_override_the_settings_and_a_systems_days_add_to_theirs() -> None:
    settings = RetentionSettings(raw_body_days=90, raw_body_days_by_system={"erp": 400, "pyxis": 60})
    plan = plan_from(settings, raw_body_days_by_system={"pyxis": 30}, facts_years=12)
    now = datetime(2026, 12, 7, tzinfo=UTC)
    assert plan.raw_body_cutoff("pyxis", now) == datetime(2026, 11, 7, tzinfo=UTC)
    assert plan.raw_body_cutoff("erp", now).date().isoformat() == "2025-11-02"
    assert plan.raw_body_cutoff("tempo", now).date().isoformat() == "2026-09-08"
    assert (plan.personal_years, plan.facts_years, plan.batch_size) == (3, 12, 1000)


def test_years_are_counted_in_calendar_years_also_from_29_february() -> None:
    plan = plan_from(RetentionSettings(personal_years=1, facts_years=10))
    report = RetentionReport(False, datetime(2028, 2, 29, 12, tzinfo=UTC), plan)
    assert report.personal_cutoff() == datetime(2027, 2, 28, 12, tzinfo=UTC)
    assert report.facts_cutoff() == datetime(2018, 2, 28, 12, tzinfo=UTC)


def test_facts_go_no_sooner_than_personal_data_and_every_period_is_positive() -> None:
    with pytest.raises(ValidationError, match="facts_years"):
        RetentionSettings(personal_years=11)
    with pytest.raises(ValidationError, match="pyxis"):
        RetentionSettings(raw_body_days_by_system={"pyxis": 0})
    with pytest.raises(InvalidRequestError, match="facts years 2 < personal years 3"):
        plan_from(RetentionSettings(), facts_years=2)
    with pytest.raises(InvalidRequestError, match="raw body days of pyxis 0"):
        plan_from(RetentionSettings(), raw_body_days_by_system={"pyxis": 0})
