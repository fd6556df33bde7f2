"""The example consumer of ``docs/consuming-order-events.md`` runs against a broker the hub published to.

Orders with up to three versions (three topics, one key) are published by the relay; the example,
run as the document says, must apply every version of every order in order and hold nothing at the
end, however its fetches of the three topics interleave.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from saleshub.runtime import HubRuntime
from saleshub.services import build_relay
from tests.integration.conftest import record_batch
from tests.integration.test_kafka_order import waves
from tests.support.tansu import TansuBroker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "consuming-order-events.md"
EXAMPLE = ROOT / "docs" / "examples" / "order_events_consumer.py"


def test_the_document_shows_the_example_that_is_tested() -> None:
    text = DOC.read_text("utf-8")
    assert "docs/examples/order_events_consumer.py" in text
    assert "python docs/examples/order_events_consumer.py --bootstrap" in text


def test_the_example_consumer_applies_every_order_version_in_order(
    kafka_hub: HubRuntime, broker: TansuBroker
) -> None:
    for batch in waves(200):
        record_batch(kafka_hub, batch)
    relay = build_relay(kafka_hub)
    assert relay.drain(timeout=60) == 200 + 120 + 40
    relay.close()

    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--bootstrap", broker.direct_bootstrap, "--idle", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    applied: dict[str, list[int]] = defaultdict(list)
    kinds: dict[str, list[str]] = defaultdict(list)
    for key, version, kind in re.findall(r"^applied (\S+) v(\d+) (\w+)$", result.stdout, re.MULTILINE):
        applied[key].append(int(version))
        kinds[key].append(kind)
    assert len(applied) == 200
    for key, versions in applied.items():
        assert versions == list(range(1, len(versions) + 1)), (key, versions)
        assert kinds[key][0] == "order_received", (key, kinds[key])
    assert sum(len(v) for v in applied.values()) == 360
    assert result.stdout.rstrip().endswith("still held: 0"), result.stdout[-500:]
