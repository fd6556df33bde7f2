"""The Datadog monitors and dashboard in ``monitoring/datadog/`` give a value when nothing fails."""

from __future__ import annotations

import json
import re

from tests.conftest import ROOT

MONITORS = ROOT / "monitoring/datadog/monitors.json"
DASHBOARD = ROOT / "monitoring/datadog/dashboard.json"
# A metric series of a query: aggregator:metric{scope} with its functions (.as_count(), .fill(zero)).
SERIES = re.compile(r"(?:sum|avg|max|min):[a-z_.]+\{[^}]*\}(?:\.[a-z_]+\([^)]*\))*")


def _queries(node: object) -> list[str]:
    if isinstance(node, dict):
        return [
            q
            for key, value in node.items()
            for q in ([value] if key in ("query", "q") and isinstance(value, str) else _queries(value))
        ]
    if isinstance(node, list):
        return [q for item in node for q in _queries(item)]
    return []


def test_error_series_are_filled_with_zero_so_the_rate_exists_when_nothing_fails() -> None:
    queries = _queries(json.loads(MONITORS.read_text())) + _queries(json.loads(DASHBOARD.read_text()))
    failing = [
        series
        for query in queries
        for series in SERIES.findall(query)
        if "status:quarantined" in series or "status:failed" in series or "status_code:5" in series
    ]
    assert failing, "no error series found: the pattern no longer matches the files"
    unfilled = [series for series in failing if ".fill(zero)" not in series]
    assert unfilled == []


def test_the_error_rate_monitor_reads_zero_when_nothing_fails() -> None:
    monitor = next(m for m in json.loads(MONITORS.read_text()) if "error rate" in m["name"])
    assert monitor["query"].count(".fill(zero)") >= 2
