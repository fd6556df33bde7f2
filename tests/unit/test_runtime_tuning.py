"""The interpreter tuning a hub server process applies at start (GIL switch interval)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from saleshub.platform.settings import Settings
from saleshub.runtime import tune_thread_switching


@pytest.fixture
def restored_switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("restored_switch_interval")
def test_the_switch_interval_is_set_in_milliseconds() -> None:
    tune_thread_switching(0.7)
    assert sys.getswitchinterval() == pytest.approx(0.0007)


def test_the_default_is_shorter_than_cpythons_own() -> None:
    assert Settings().thread_switch_interval_ms < 5


@pytest.mark.parametrize("value", ["0", "-1", "101"])
def test_an_interval_out_of_range_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SALESHUB_THREAD_SWITCH_INTERVAL_MS", value)
    with pytest.raises(ValidationError, match="thread_switch_interval_ms"):
        Settings()
