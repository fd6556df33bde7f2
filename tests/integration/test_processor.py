"""The processor against a real PostgreSQL: lanes, order per order, poison events, wake-ups, SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from saleshub.receive.intake import InboundEvent, admit
from saleshub.runtime import HubRuntime
from saleshub.store.tables import (
    event_outbox,
    event_queue,
    integration_events,
    service_order_versions,
    service_orders,
)
from tests.conftest import ROOT
from tests.integration.conftest import processed, wait_until
from tests.support.synthetic import pyxis_event

pytestmark = pytest.mark.integration


def record_only(hub: HubRuntime, bodies: list[bytes]) -> list[str]:
    """Record ``bodies`` (no processing); their event ids."""
    adapter = hub.adapters["pyxis"]
    items = []
    for body in bodies:
        event = InboundEvent("pyxis", "webhook", body, "application/json")
        items.append((event, admit(event, adapter)))
    return [str(receipt.event_id) for receipt in hub.recorder.record_batch(items)]


def count(hub: HubRuntime, table: object, *where: object) -> int:
    with hub.database.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())  # type: ignore[arg-type]


def test_an_orders_events_are_processed_in_the_order_received(hub: HubRuntime) -> None:
    # Three revisions of one order recorded in three transactions, processed in one batch.
    for revision in (1, 2, 3):
        event_type = "order.created" if revision == 1 else "order.updated"
        record_only(hub, [pyxis_event(7, revision=revision, event_type=event_type, notes=f"rev {revision}")])
    done = hub.processor().drain()
    assert done.events == 3 and done.statuses == {"mapped": 3}
    with hub.database.engine.connect() as conn:
        versions = conn.execute(
            select(service_order_versions.c.version_no, service_order_versions.c.source_version).order_by(
                service_order_versions.c.version_no
            )
        ).all()
        kinds = conn.execute(select(event_outbox.c.kind).order_by(event_outbox.c.outbox_id)).scalars().all()
    assert [tuple(v) for v in versions] == [(1, 1), (2, 2), (3, 3)]
    assert kinds == ["order_received", "order_updated", "order_updated"]
    assert count(hub, event_queue) == 0


def test_two_processors_share_the_queue_without_overlap(hub: HubRuntime) -> None:
    bodies = [
        pyxis_event(n, revision=r, event_type="order.updated" if r == 2 else "order.created", notes=f"r{r}")
        for n in range(200)
        for r in (1, 2)
    ]
    record_only(hub, bodies)
    first, second = hub.processor(), hub.processor()
    first.batch_size = second.batch_size = 50
    results = []
    threads = [threading.Thread(target=lambda p=p: results.append(p.drain())) for p in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(r.events for r in results) == 400
    assert all(r.events > 0 for r in results), "both processors took lanes"
    assert count(hub, service_orders) == 200
    assert count(hub, service_order_versions) == 400
    assert count(hub, event_outbox) == 400
    assert count(hub, integration_events, integration_events.c.status != "mapped") == 0


def test_an_event_the_database_refuses_fails_alone_and_its_order_goes_on(hub: HubRuntime) -> None:
    # A real refusal by PostgreSQL (not a stand-in): order 13's first version violates a check.
    with hub.database.engine.begin() as conn:
        conn.execute(
            text(
                "ALTER TABLE service_orders ADD CONSTRAINT test_refuses CHECK "
                "(external_order_id <> 'PX-SYN-000000013' OR source_version <> 1)"
            )
        )
    ids = record_only(
        hub,
        [pyxis_event(n) for n in range(10, 17)]
        + [pyxis_event(13, revision=2, event_type="order.updated", notes="after the refusal")],
    )
    done = hub.processor().drain()
    assert done.events == 8 and done.failed_alone == 1
    poisoned = processed(hub, ids[3])
    assert poisoned.status == "failed" and poisoned.errors is not None
    assert poisoned.errors["at_stage"] == "store" and "test_refuses" in poisoned.errors["message"]
    assert processed(hub, ids[7]).status == "mapped", "a later event of the same order is not blocked"
    assert count(hub, service_orders) == 7
    assert count(hub, event_queue) == 0
    rejected = count(hub, event_outbox, event_outbox.c.kind == "order_rejected")
    assert rejected == 1


def test_a_sleeping_processor_is_woken_by_the_recording_commit(hub: HubRuntime) -> None:
    processor = hub.processor()
    stop = threading.Event()
    # An idle wait of an hour: only the NOTIFY can wake it before the deadline below.
    thread = threading.Thread(target=processor.run, args=(stop,), kwargs={"idle_seconds": 3600})
    thread.start()
    try:
        # The first event proves the processor runs; it then finds nothing more and sleeps on LISTEN.
        [first] = record_only(hub, [pyxis_event(1)])
        assert processed(hub, first, timeout=120).status == "mapped"
        [event_id] = record_only(hub, [pyxis_event(2)])
        assert processed(hub, event_id, timeout=120).status == "mapped"
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()


@pytest.mark.slow
def test_a_processor_killed_mid_batch_loses_and_repeats_nothing(
    hub: HubRuntime, db_url: str, tmp_path: Path
) -> None:
    total = 4000
    record_only(hub, [pyxis_event(50_000 + n) for n in range(total)])
    env = {
        **os.environ,
        "SALESHUB_DATABASE__URL": db_url,
        "SALESHUB_DATABASE__DATA_DIR": str(tmp_path / "data"),
        "SALESHUB_LOG_LEVEL": "WARNING",
    }
    with (tmp_path / "process.log").open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "saleshub", "process"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    try:
        wait_until(lambda: count(hub, service_orders) > 0, 60, "the processor stored some orders")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    stored = count(hub, service_orders)
    assert stored < total, "the kill should land before the end"
    assert count(hub, event_queue) == total - stored, "every stored order's event left the queue with it"
    hub.processor().drain()
    assert count(hub, service_orders) == total
    assert count(hub, service_order_versions) == total
    assert count(hub, event_outbox) == total, "one order_received per order, none twice"
    assert count(hub, integration_events, integration_events.c.status == "mapped") == total
    assert count(hub, event_queue) == 0
