"""The Pyxis order-event consumer against a real broker: records become orders, poison records are
quarantined and dead-lettered without blocking their partition, and a consumer killed before its
offset commit processes its records again without creating a duplicate order."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from sqlalchemy import func, select

from saleshub.platform.kafka_clients import ensure_topics
from saleshub.platform.secrets import EnvSecretStore
from saleshub.platform.settings import Settings
from saleshub.runtime import HubRuntime
from saleshub.services import build_consumers
from saleshub.store.events import Status
from saleshub.store.tables import integration_events, service_orders
from tests.integration.conftest import open_hub, start_kafka_command, wait_until
from tests.support.synthetic import pyxis_event
from tests.support.tansu import CONSUMER_TIMINGS, TansuBroker, read_topic

pytestmark = pytest.mark.integration

TOPIC = "pyxis.sales.order_events"
DEAD_LETTERS = "integration.sales.dead_letter"


def produce(broker: TansuBroker, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": broker.direct_bootstrap})
    for key, value in records:
        producer.produce(TOPIC, value, key, headers=[("content-type", b"application/json")])
    assert producer.flush(30) == 0


def count(hub: HubRuntime, table: object, *where: object) -> int:
    with hub.database.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())  # type: ignore[arg-type]


def consumer_hub(db_url: str, broker: TansuBroker) -> HubRuntime:
    return open_hub(
        db_url,
        kafka={
            "bootstrap_servers": broker.direct_bootstrap,
            "inbound_topics": {"pyxis": TOPIC},
            "consumer_config": CONSUMER_TIMINGS,
            "topic_partitions": 3,
        },
    )


def test_records_become_orders_and_poison_records_are_dead_lettered_without_blocking(
    db_url: str, broker: TansuBroker
) -> None:
    hub = consumer_hub(db_url, broker)
    ensure_topics(hub.settings, hub.secrets, [TOPIC, DEAD_LETTERS])
    good = [(f"ES_PX-SYN-{n:09d}".encode(), pyxis_event(n)) for n in range(200)]
    poison = [
        (b"ES_PX-SYN-000000005", b'{"truncated": '),
        (b"ES_PX-SYN-000000006", b"\xff\xfe not utf-8"),
        (b"ES_PX-SYN-000000007", pyxis_event(7, event_type="order.teleported")),
    ]
    # Poison records sit between good records of the same keys (so of the same partitions).
    produce(broker, good[:100] + poison + good[100:])
    [consumer] = build_consumers(hub)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    try:
        wait_until(lambda: count(hub, integration_events) == 203, 60, "all 203 records are recorded")
    finally:
        stop.set()
        thread.join(30)
        consumer.close()
    try:
        hub.processor().drain()
        assert count(hub, service_orders) == 200
        assert count(hub, integration_events, integration_events.c.transport == "kafka") == 203
        assert count(hub, integration_events, integration_events.c.status == Status.QUARANTINED.value) == 3
        dead = read_topic(broker.direct_bootstrap, DEAD_LETTERS)
        assert sorted(m.value() for m in dead) == sorted(value for _, value in poison)
        for message in dead:
            headers = {key: (value or b"").decode() for key, value in message.headers() or []}
            assert headers["saleshub.error.status"] == "quarantined"
            assert headers["saleshub.error.stage"] in ("decode", "classify")
            assert headers["saleshub.error.message"]
            assert headers["saleshub.original.topic"] == TOPIC
            assert headers["content-type"] == "application/json"
        # The offsets after every record are committed: nothing is left to consume.
        reader = Consumer(
            {"bootstrap.servers": broker.direct_bootstrap, "group.id": hub.settings.kafka.consumer_group}
        )
        committed = reader.committed([TopicPartition(TOPIC, p) for p in range(3)], timeout=10)
        reader.close()
        assert sum(tp.offset for tp in committed) == 203
    finally:
        hub.close()


def start_consumer(
    db_url: str, broker: TansuBroker, tmp_path: Path, commit_interval_ms: int
) -> subprocess.Popen[bytes]:
    consumer_config = {**CONSUMER_TIMINGS, "auto.commit.interval.ms": commit_interval_ms}
    settings = {
        "SALESHUB_KAFKA__BOOTSTRAP_SERVERS": broker.direct_bootstrap,
        "SALESHUB_KAFKA__INBOUND_TOPICS": json.dumps({"pyxis": TOPIC}),
        "SALESHUB_KAFKA__CONSUMER_CONFIG": json.dumps(consumer_config),
    }
    return start_kafka_command("consume", db_url, tmp_path, settings)


@pytest.mark.slow
def test_a_consumer_killed_before_its_commit_reprocesses_without_duplicates(
    db_url: str, broker: TansuBroker, tmp_path: Path
) -> None:
    settings = Settings(kafka={"bootstrap_servers": broker.direct_bootstrap, "topic_partitions": 3})  # type: ignore[arg-type]
    ensure_topics(settings, EnvSecretStore({}), [TOPIC])
    produce(broker, [(f"ES_PX-SYN-{n:09d}".encode(), pyxis_event(n)) for n in range(300)])
    hub = open_hub(db_url)
    try:
        # An hour between offset commits: the kill certainly lands after the database commit and
        # before the offset commit.
        first = start_consumer(db_url, broker, tmp_path, commit_interval_ms=3_600_000)
        try:
            wait_until(lambda: count(hub, integration_events) == 300, 60, "the first consumer recorded all")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        second = start_consumer(db_url, broker, tmp_path, commit_interval_ms=200)
        try:
            reader = Consumer({"bootstrap.servers": broker.direct_bootstrap, "group.id": "saleshub"})

            def all_committed() -> bool:
                committed = reader.committed([TopicPartition(TOPIC, p) for p in range(3)], timeout=10)
                return sum(max(tp.offset, 0) for tp in committed) == 300

            wait_until(all_committed, 90, "the second consumer committed every offset")
            reader.close()
        finally:
            second.terminate()
            second.wait(30)
        hub.processor().drain()
        assert count(hub, service_orders) == 300
        assert count(hub, integration_events) == 300, "the second pass recognised every record"
    finally:
        hub.close()
