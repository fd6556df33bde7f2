"""Poison records on a real broker: each is settled once, and none holds back another partition.

A record the dead-letter topic cannot take (larger than the producer's ``message.max.bytes``) is
dead-lettered as a reference to the stored event; a record already dead-lettered is not sent again
when its round is consumed a second time; a record that decodes but fails its mapping is announced
as ``order_rejected`` and is not dead-lettered; two records with the same bytes and no event id at
different offsets are two events; a dead letter the broker does not take for a reason that can
pass (its topic missing) holds back its own partition only, until it passes.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from sqlalchemy import select

from saleshub.platform.kafka_clients import consumer_config, ensure_topics, producer_config
from saleshub.receive.dead_letters import original_headers
from saleshub.receive.kafka_consumer import OrderEventConsumer
from saleshub.runtime import HubRuntime
from saleshub.services import build_consumers
from saleshub.store import queries
from saleshub.store.dead_letters import dead_letter_offsets
from saleshub.store.events import Status
from saleshub.store.tables import event_outbox, integration_events, service_orders
from tests.integration.conftest import open_hub, wait_until
from tests.integration.test_kafka_consumer import DEAD_LETTERS, TOPIC, consumer_hub, count
from tests.support.synthetic import pyxis_event
from tests.support.tansu import CONSUMER_TIMINGS, TansuBroker, read_topic

pytestmark = pytest.mark.integration

PARTITIONS = 3
#: Larger than librdkafka's default ``message.max.bytes`` (1,000,000), which the hub's producers keep.
BIG = pyxis_event(5, notes="x" * 2_000_000)


def produce(broker: TansuBroker, records: list[tuple[bytes, bytes]]) -> None:
    """Produce as an outside producer that allows records of up to 5 MB."""
    producer = Producer({"bootstrap.servers": broker.direct_bootstrap, "message.max.bytes": 5_000_000})
    for key, value in records:
        producer.produce(TOPIC, value, key, headers=[("content-type", b"application/json")])
    assert producer.flush(30) == 0


def committed_offsets(hub: HubRuntime, broker: TansuBroker) -> list[int]:
    """The group's committed offset of each partition of the topic (0 where none is)."""
    reader = Consumer(
        {"bootstrap.servers": broker.direct_bootstrap, "group.id": hub.settings.kafka.consumer_group}
    )
    try:
        offsets = reader.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10)
    finally:
        reader.close()
    return [max(tp.offset, 0) for tp in offsets]


def committed(hub: HubRuntime, broker: TansuBroker) -> int:
    """How many records of the topic the group has committed (the sum of the partitions' offsets)."""
    return sum(committed_offsets(hub, broker))


def dead_letters(hub: HubRuntime, broker: TansuBroker) -> list[Message]:
    """The dead-letter topic, read at least up to the offsets the store says it was given."""
    with hub.database.engine.connect() as conn:
        until = dead_letter_offsets(conn, DEAD_LETTERS)
    return read_topic(broker.direct_bootstrap, DEAD_LETTERS, until=until)


def text_headers(message: Message) -> dict[str, str]:
    return {
        key: value.decode() if isinstance(value, bytes) else value or ""
        for key, value in original_headers(message)
    }


def sources(messages: list[Message]) -> Counter[tuple[int, int]]:
    """How often each source record (partition, offset) is on the dead-letter topic."""
    found: Counter[tuple[int, int]] = Counter()
    for message in messages:
        headers = text_headers(message)
        assert headers["saleshub.original.topic"] == TOPIC
        found[int(headers["saleshub.original.partition"]), int(headers["saleshub.original.offset"])] += 1
    return found


def consume_in_thread(hub: HubRuntime, until: Callable[[], bool], what: str) -> None:
    [consumer] = build_consumers(hub)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    try:
        wait_until(until, 90, what)
    finally:
        stop.set()
        thread.join(60)
        consumer.close()


def test_a_record_too_large_for_the_dead_letter_topic_is_settled_and_blocks_nothing(
    db_url: str, broker: TansuBroker
) -> None:
    hub = consumer_hub(db_url, broker)
    try:
        ensure_topics(hub.settings, hub.secrets, [TOPIC, DEAD_LETTERS])
        good = [(f"ES_PX-SYN-{n:09d}".encode(), pyxis_event(n)) for n in range(60)]
        # Small poison records before and after the big one, on other partitions too, so that the
        # big one shares its rounds with records that are dead-lettered normally.
        small = [(f"ES_PX-SYN-{n:09d}".encode(), b'{"truncated": ') for n in (1, 2, 3)]
        later = [(f"ES_PX-SYN-{n:09d}".encode(), b"\xff\xfe not utf-8") for n in (7, 8, 9)]
        records = good[:20] + small + [(b"ES_PX-SYN-000000005", BIG)] + good[20:40] + later + good[40:]
        produce(broker, records)
        total = len(records)

        consume_in_thread(
            hub,
            lambda: count(hub, integration_events) == total and committed(hub, broker) == total,
            f"all {total} records are recorded and committed on every partition",
        )
        hub.processor().drain()
        assert count(hub, service_orders) == 60
        assert count(hub, integration_events, integration_events.c.status == Status.QUARANTINED.value) == 7

        dead = dead_letters(hub, broker)
        assert set(sources(dead).values()) == {1}, "each poison record is dead-lettered once"
        assert len(dead) == 7
        [reference] = [m for m in dead if text_headers(m)["saleshub.dead_letter.form"] == "reference"]
        headers = text_headers(reference)
        assert not reference.value(), "the bytes stay in the store; the record refers to them"
        assert headers["saleshub.original.size"] == str(len(BIG))
        assert headers["saleshub.error.stage"] == "decode"
        assert "bytes" in headers["saleshub.error.message"]
        with hub.database.engine.connect() as conn:
            stored = queries.event(conn, uuid.UUID(headers["saleshub.error.event_id"]))
        assert stored is not None and stored.raw_body == BIG
        assert stored.errors["stage"] == "decode"
        full = [m for m in dead if m is not reference]
        assert {text_headers(m)["saleshub.dead_letter.form"] for m in full} == {"full"}
        assert sorted(m.value() or b"" for m in full) == sorted(value for _, value in small + later)
    finally:
        hub.close()


def test_a_round_consumed_again_dead_letters_nothing_twice(db_url: str, broker: TansuBroker) -> None:
    hub = consumer_hub(db_url, broker)
    try:
        ensure_topics(hub.settings, hub.secrets, [TOPIC, DEAD_LETTERS])
        records = [(f"ES_PX-SYN-{n:09d}".encode(), pyxis_event(n)) for n in range(30)]
        records += [(f"ES_PX-SYN-{n:09d}".encode(), b'{"broken": [' + str(n).encode()) for n in range(14)]
        produce(broker, records)
        # A first member records and dead-letters every record but never commits an offset (as if
        # killed before its commit): the next member consumes the same records again.
        settings = hub.settings
        first = OrderEventConsumer(
            hub.recorder,
            hub.adapters,
            Consumer({**consumer_config(settings, hub.secrets), "enable.auto.commit": False}),
            Producer(producer_config(settings, hub.secrets, "test-dead-letters")),
            system="pyxis",
            topic=TOPIC,
            dead_letter_topic=DEAD_LETTERS,
        )
        try:

            def recorded_all() -> bool:
                first.consume_round()
                return count(hub, integration_events) == 44

            wait_until(recorded_all, 90, "the first member recorded every record")
        finally:
            first.close()
        assert committed(hub, broker) == 0
        consume_in_thread(hub, lambda: committed(hub, broker) == 44, "the second member committed all")
        found = sources(dead_letters(hub, broker))
        assert len(found) == 14
        assert set(found.values()) == {1}, f"dead-lettered more than once: {found}"
    finally:
        hub.close()


def test_an_unmappable_record_is_announced_as_rejected_and_not_dead_lettered(
    db_url: str, broker: TansuBroker
) -> None:
    hub = consumer_hub(db_url, broker)
    try:
        ensure_topics(hub.settings, hub.secrets, [TOPIC, DEAD_LETTERS])
        nowhere = pyxis_event(3).replace(b'"channel": "STORE"', b'"channel": "NOWHERE"')
        records = [(f"ES_PX-SYN-{n:09d}".encode(), pyxis_event(n)) for n in (1, 2)]
        records += [(b"ES_PX-SYN-000000003", nowhere), (b"ES_PX-SYN-000000004", b"not json")]
        produce(broker, records)
        consume_in_thread(hub, lambda: committed(hub, broker) == 4, "every record is committed")
        hub.processor().drain()
        with hub.database.engine.connect() as conn:
            ids = conn.execute(select(integration_events.c.event_id)).scalars().all()
            opened = [queries.event(conn, event_id) for event_id in ids]
            statuses = {row.raw_body: row.status for row in opened if row is not None}
            rejected = conn.execute(
                select(event_outbox.c.event_id).where(event_outbox.c.kind == "order_rejected")
            ).all()
        assert statuses[nowhere] == Status.QUARANTINED.value
        assert len(rejected) == 2, "the unmappable record and the undecodable one are announced"
        dead = dead_letters(hub, broker)
        assert [m.value() for m in dead] == [b"not json"], "only the record intake refused"
    finally:
        hub.close()


def test_records_with_the_same_bytes_and_no_event_id_are_distinct_events(
    db_url: str, broker: TansuBroker
) -> None:
    hub = consumer_hub(db_url, broker)
    try:
        ensure_topics(hub.settings, hub.secrets, [TOPIC, DEAD_LETTERS])
        same = b"ES_PX-SYN-000000001"
        produce(broker, [(same, b""), (same, pyxis_event(1)), (same, b"")])
        consume_in_thread(hub, lambda: committed(hub, broker) == 3, "every record is committed")
        assert count(hub, integration_events) == 3
        assert count(hub, integration_events, integration_events.c.body_size == 0) == 2
        found = sources(dead_letters(hub, broker))
        assert sorted(offset for _, offset in found) == [0, 2], "both empty records, once each"
    finally:
        hub.close()


def test_a_dead_letter_the_broker_does_not_take_holds_back_only_its_partition_until_it_passes(
    db_url: str, broker: TansuBroker
) -> None:
    # The dead-letter topic does not exist yet and may not be created on use: its records time out
    # (a failure that can pass), until the topic is created.
    hub = open_hub(
        db_url,
        kafka={
            "bootstrap_servers": broker.direct_bootstrap,
            "inbound_topics": {"pyxis": TOPIC},
            "consumer_config": CONSUMER_TIMINGS,
            "client_config": {"allow.auto.create.topics": False},
            "topic_partitions": PARTITIONS,
        },
        relay={"message_timeout_ms": 2000},
    )
    try:
        ensure_topics(hub.settings, hub.secrets, [TOPIC])
        producer = Producer({"bootstrap.servers": broker.direct_bootstrap})
        per_partition = {p: [pyxis_event(p * 100 + n) for n in range(10)] for p in range(PARTITIONS)}
        per_partition[0][4:4] = [b'{"poison": 1', b'{"poison": 2']  # at offsets 4 and 5
        for partition, values in per_partition.items():
            for value in values:
                producer.produce(
                    TOPIC, value, partition=partition, headers=[("content-type", b"application/json")]
                )
        assert producer.flush(30) == 0
        [consumer] = build_consumers(hub)
        stop = threading.Event()
        thread = threading.Thread(target=consumer.run, args=(stop,))
        thread.start()
        try:
            wait_until(
                lambda: committed_offsets(hub, broker) == [4, 10, 10],
                90,
                "the other partitions committed everything and partition 0 up to its poison record",
            )
            assert count(hub, integration_events) == 32, "the held partition's records are recorded"
            ensure_topics(hub.settings, hub.secrets, [DEAD_LETTERS])
            wait_until(
                lambda: committed_offsets(hub, broker) == [12, 10, 10],
                90,
                "partition 0 went on once the dead-letter topic took its records",
            )
        finally:
            stop.set()
            thread.join(60)
            consumer.close()
        assert count(hub, integration_events) == 32
        found = sources(dead_letters(hub, broker))
        assert found == Counter({(0, 4): 1, (0, 5): 1})
    finally:
        hub.close()
