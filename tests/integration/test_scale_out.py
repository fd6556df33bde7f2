"""Scale-out across processes: two ``saleshub process`` and two ``saleshub kafka relay`` share the work.

The roles run as separate operating-system processes on one PostgreSQL, as the chart's
Deployments do. 1,000 events of 100 orders (ten versions each) are recorded; two processor
processes drain the queue together, then two relay processes drain the outbox to a real
Kafka-protocol broker (Tansu). Each pair is started behind a gate, a table lock the test holds on
the lanes the pair claims, released once both processes wait on it, so both are working at once on
any machine (no sleep, no timing). Then: every event was processed exactly once and both
processors took a share; every outbox row was published once and both relays took a share; on
Kafka no event appears twice and each order's versions come in order.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import fastavro
import pytest
from sqlalchemy import Connection, func, select, text

from canonical.events import EventKind
from saleshub.publish.framing import unframe
from saleshub.receive.intake import InboundEvent, admit
from saleshub.runtime import HubRuntime
from saleshub.store.tables import event_outbox, integration_events, service_order_versions
from tests.conftest import ROOT
from tests.integration.conftest import read_published, wait_until
from tests.integration.test_kafka_outbox import committed
from tests.support.synthetic import pyxis_event
from tests.support.tansu import TansuBroker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORDERS, VERSIONS = 100, 10


def record_only(hub: HubRuntime, bodies: list[bytes]) -> None:
    adapter = hub.adapters["pyxis"]
    items = []
    for body in bodies:
        event = InboundEvent("pyxis", "webhook", body, "application/json")
        items.append((event, admit(event, adapter)))
    hub.recorder.record_batch(items)


def waiting_on(conn: Connection, table: str) -> int:
    """Backends waiting for a lock, in a statement on ``table`` (the gated processes)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE :table"
    )
    return int(conn.execute(query, {"table": f"%{table}%"}).scalar_one())


def run_gated(hub: HubRuntime, table: str, args: list[str], env: dict[str, str], tmp_path: Path) -> list[str]:
    """Start two ``saleshub ARGS`` processes behind a lock on ``table``; open it once both wait on it.

    Returns each process's standard output after it exited 0.
    """
    gate = hub.database.engine.connect()
    transaction = gate.begin()
    gate.execute(text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
    processes = []
    try:
        for number in range(2):
            log = tmp_path / f"{args[-2]}-{number}.log"
            with log.open("wb") as sink:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "saleshub", *args],
                        cwd=ROOT,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=sink,
                    )
                )

        def both_wait() -> bool:
            for process in processes:
                assert process.poll() is None, f"exited early: {process.returncode}"
            with hub.database.engine.connect() as conn:
                return waiting_on(conn, table) >= 2

        wait_until(both_wait, 120, f"both `saleshub {' '.join(args)}` wait on {table}")
    finally:
        transaction.rollback()
        gate.close()
    outputs = []
    for number, process in enumerate(processes):
        stdout, _ = process.communicate(timeout=300)
        log = tmp_path / f"{args[-2]}-{number}.log"
        assert process.returncode == 0, log.read_text()[-3000:]
        outputs.append(stdout.decode())
    return outputs


def shares(outputs: list[str], pattern: str) -> list[int]:
    counts = []
    for output in outputs:
        found = re.search(pattern, " ".join(output.split()))
        assert found, output
        counts.append(int(found.group(1)))
    return counts


def test_two_processor_and_two_relay_processes_share_the_work_without_duplicates_or_reordering(
    hub: HubRuntime, db_url: str, broker: TansuBroker, tmp_path: Path
) -> None:
    bodies = [
        pyxis_event(
            order,
            revision=revision,
            event_type="order.created" if revision == 1 else "order.updated",
            notes=f"revision {revision}",
        )
        for revision in range(1, VERSIONS + 1)
        for order in range(ORDERS)
    ]
    for start in range(0, len(bodies), 100):
        record_only(hub, bodies[start : start + 100])
    total = ORDERS * VERSIONS
    env = {
        **os.environ,
        "SALESHUB_DATABASE__URL": db_url,
        "SALESHUB_DATABASE__DATA_DIR": str(tmp_path / "data"),
        "SALESHUB_LOG_LEVEL": "WARNING",
        "SALESHUB_PROCESSOR__BATCH_SIZE": "25",  # many rounds, so the two interleave
        "SALESHUB_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
        "SALESHUB_RELAY__THREADS": "1",  # one relay per process: the gate counts processes
        "SALESHUB_RELAY__BATCH_SIZE": "50",
        "SALESHUB_RELAY__MESSAGE_TIMEOUT_MS": "10000",
    }

    processed = shares(
        run_gated(hub, "processor_lanes", ["process", "--drain"], env, tmp_path), r"processed (\d+) events"
    )
    assert sum(processed) == total, processed
    assert all(share > 0 for share in processed), f"both processors took lanes: {processed}"
    with hub.database.engine.connect() as conn:
        statuses = dict(
            conn.execute(
                select(integration_events.c.status, func.count()).group_by(integration_events.c.status)
            ).all()
        )
        assert statuses == {"mapped": total}
        assert conn.execute(select(func.count()).select_from(service_order_versions)).scalar() == total
        assert conn.execute(select(func.count()).select_from(event_outbox)).scalar() == total

    published = shares(
        run_gated(hub, "outbox_lanes", ["kafka", "relay", "--drain"], env, tmp_path),
        r"published (\d+) events",
    )
    assert sum(published) == total, published
    assert all(share > 0 for share in published), f"both relays took lanes: {published}"

    ids: list[str] = []
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for kind in (EventKind.ORDER_RECEIVED, EventKind.ORDER_UPDATED):
        schema = committed(kind)
        for message in sorted(read_published(hub, broker, kind.topic), key=lambda m: m.offset()):
            headers = {key: (value or b"").decode() for key, value in message.headers() or []}
            ids.append(headers["ce_id"])
            record = fastavro.schemaless_reader(
                io.BytesIO(unframe(message.value() or b"").body), schema.parsed, None
            )
            assert isinstance(record, dict)
            per_key[message.key() or b""].append(int(record["version_no"]))
    assert len(ids) == len(set(ids)) == total, "no event published twice"
    assert len(per_key) == ORDERS
    for key, versions in per_key.items():
        assert versions == list(range(1, VERSIONS + 1)), key
