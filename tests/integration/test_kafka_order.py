"""An order's events never overtake each other on Kafka, across topics too, and an outage shows at once.

The outage tests publish orders with up to three versions (``order_received``, ``order_updated``,
``order_cancelled``: three topics, one key) with two relays while the broker goes away in the middle
of a round, for 5, 30 and 60 s. Then a consumer reads every order topic back and checks, per key,
after dropping repeated ``ce_id`` values, that no version was written before an earlier one: across topics
by the records' producer timestamps (a record is timestamped when produced, and a retry is a new
record), within a partition by offset.
"""

from __future__ import annotations

import io
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fastavro
import pytest
from confluent_kafka import Message
from sqlalchemy import select
from typer.testing import CliRunner

from canonical.events import EventKind
from saleshub.cli import app
from saleshub.publish.framing import unframe
from saleshub.publish.relay import OutboxRelay
from saleshub.publish.schemas import EventSchemas
from saleshub.runtime import HubRuntime
from saleshub.services import build_relay
from saleshub.store.tables import event_outbox
from tests.integration.conftest import open_hub, outbox_pending, read_published, record_batch, wait_until
from tests.support.synthetic import pyxis_event
from tests.support.tansu import CONSUMER_TIMINGS, TansuBroker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ORDER_KINDS = (EventKind.ORDER_RECEIVED, EventKind.ORDER_UPDATED, EventKind.ORDER_CANCELLED)
WAVE = 40  # orders created per batch


def waves(count: int) -> Iterator[list[bytes]]:
    """Batches in which new orders arrive while earlier ones are updated and cancelled.

    Every order gets version 1; three in five get version 2 two waves later; one in five is
    cancelled (version 3) four waves later. So each batch mixes the three topics, and an order's
    versions are pending or in flight at the same time.
    """
    total = count // WAVE
    for wave in range(total + 4):
        batch = [pyxis_event(n) for n in range(wave * WAVE, (wave + 1) * WAVE) if wave < total]
        if 2 <= wave < total + 2:
            first = (wave - 2) * WAVE
            batch += [
                pyxis_event(n, revision=2, notes=f"update of {n}")
                for n in range(first, first + WAVE)
                if n % 5 < 3
            ]
        if wave >= 4:
            first = (wave - 4) * WAVE
            batch += [
                pyxis_event(n, revision=3, event_type="order.cancelled", notes=f"update of {n}")
                for n in range(first, first + WAVE)
                if n % 5 == 0
            ]
        yield batch


@dataclass(frozen=True)
class Seen:
    """One record of an order topic as a consumer sees it."""

    key: bytes
    ce_id: str
    version: int
    previous: int | None
    timestamp: int
    topic: str
    partition: int
    offset: int


def read_order_topics(hub: HubRuntime, broker: TansuBroker) -> list[Seen]:
    """Every record of the three order topics, decoded against the schema it names."""
    schemas = EventSchemas.load(ROOT / "contracts" / "avro" / "events")
    seen = []
    for kind in ORDER_KINDS:
        for message in read_published(hub, broker, kind.topic):
            seen.append(decode(message, schemas))
    return seen


def decode(message: Message, schemas: EventSchemas) -> Seen:
    framed = unframe(message.value() or b"")
    assert isinstance(framed.schema_ref, bytes)
    schema = schemas.by_id(int.from_bytes(framed.schema_ref, "little", signed=True))
    record = fastavro.schemaless_reader(io.BytesIO(framed.body), schema.parsed, None)
    assert isinstance(record, dict)
    headers = dict(message.headers() or [])
    return Seen(
        key=message.key() or b"",
        ce_id=(headers["ce_id"] or b"").decode(),
        version=record["version_no"],
        previous=record["previous_version_no"],
        timestamp=message.timestamp()[1],
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
    )


def overtakings(seen: list[Seen]) -> list[str]:
    """Per key, every place where a version was written before an earlier one (repeats dropped).

    Across topics the records' producer timestamps (milliseconds) order them; a tie is read in
    version order, since nothing finer tells two such records apart. Within one partition the
    offsets order them exactly.
    """
    problems = []
    per_key: dict[bytes, list[Seen]] = defaultdict(list)
    for record in seen:
        per_key[record.key].append(record)
    for key, records in per_key.items():
        by_time = [r.version for r in _first_copies(sorted(records, key=lambda r: (r.timestamp, r.version)))]
        if by_time != sorted(by_time):
            problems.append(f"{key.decode()}: versions written in the order {by_time}")
        for topic in {r.topic for r in records}:
            in_log = [
                r.version for r in _first_copies(sorted(records, key=lambda r: r.offset)) if r.topic == topic
            ]
            if in_log != sorted(in_log):
                problems.append(f"{key.decode()}: {topic} holds versions in the order {in_log}")
    return problems


def _first_copies(records: list[Seen]) -> list[Seen]:
    ids: set[str] = set()
    first = []
    for record in records:
        if record.ce_id not in ids:
            ids.add(record.ce_id)
            first.append(record)
    return first


def test_the_order_check_catches_an_overtaking() -> None:
    def seen(version: int, timestamp: int, ce_id: str, topic: str = "t") -> Seen:
        return Seen(b"ES_1", ce_id, version, version - 1 or None, timestamp, topic, 0, timestamp)

    in_order = [seen(1, 10, "a", "r"), seen(2, 20, "b"), seen(1, 30, "a", "r")]  # a repeat comes later
    assert overtakings(in_order) == []
    overtaken = [seen(2, 10, "b"), seen(1, 30, "a", "r")]  # version 1 re-sent after version 2 was taken
    assert overtakings(overtaken) == ["ES_1: versions written in the order [2, 1]"]


def relays_running(
    hub: HubRuntime, count: int = 2
) -> tuple[threading.Event, list[threading.Thread], list[OutboxRelay]]:
    stop = threading.Event()
    relays = [build_relay(hub) for _ in range(count)]
    for relay in relays:
        relay.batch_size = 300  # several rounds per sweep, so the outage lands inside one
    threads = [threading.Thread(target=relay.run, args=(stop, 0.05)) for relay in relays]
    for thread in threads:
        thread.start()
    return stop, threads, relays


@pytest.mark.parametrize(
    ("outage", "delivery_timeout_ms"),
    [
        pytest.param(5, 5000, id="5s"),
        pytest.param(30, 30000, id="30s", marks=pytest.mark.slow),
        pytest.param(60, 30000, id="60s", marks=pytest.mark.slow),
    ],
)
def test_no_version_of_an_order_overtakes_an_earlier_one_across_an_outage(
    db_url: str, broker: TansuBroker, outage: int, delivery_timeout_ms: int
) -> None:
    hub = open_hub(
        db_url,
        kafka={"bootstrap_servers": broker.bootstrap, "consumer_config": CONSUMER_TIMINGS},
        relay={"message_timeout_ms": delivery_timeout_ms},
    )
    stop, threads, relays = relays_running(hub)
    batches = list(waves(1000))
    try:
        for number, batch in enumerate(batches):
            record_batch(hub, batch)
            if number == len(batches) // 3:
                # The relays are mid-round: records of this batch are being produced right now.
                time.sleep(0.05)
                broker.stop_proxy()
                outage_started = time.monotonic()
        assert outbox_pending(hub) > 0, "events committed during the outage wait in the outbox"
        time.sleep(max(0.0, outage - (time.monotonic() - outage_started)))
        broker.start_proxy()
        wait_until(lambda: outbox_pending(hub) == 0, 180, "the backlog drained after the outage")
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        for relay in relays:
            relay.close()
    with hub.database.engine.connect() as conn:
        committed = {str(i) for i in conn.execute(select(event_outbox.c.event_id)).scalars()}
    seen = read_order_topics(hub, broker)
    hub.close()

    assert len(committed) == 1000 + 600 + 200
    assert {s.ce_id for s in seen} == committed, "every committed event is on Kafka"
    assert all(s.previous == (s.version - 1 or None) for s in seen)
    problems = overtakings(seen)
    assert not problems, f"{len(problems)} overtakings, e.g. {problems[:5]}"


def test_status_shows_the_broker_unreachable_before_any_delivery_times_out(
    db_url: str, broker: TansuBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    monkeypatch.setenv("SALESHUB_KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap)
    monkeypatch.setenv("COLUMNS", "250")
    run = CliRunner()
    # A delivery timeout far beyond the deadlines below: only the broker watch can report the outage.
    delivery_timeout_s = 600
    hub = open_hub(
        db_url,
        kafka={"bootstrap_servers": broker.bootstrap},
        relay={"message_timeout_ms": delivery_timeout_s * 1000},
    )
    stop, threads, relays = relays_running(hub)
    try:
        record_batch(hub, [pyxis_event(n) for n in range(20)])
        wait_until(lambda: outbox_pending(hub) == 0, 120, "the first orders were published")
        wait_until(lambda: "broker reachable" in run.invoke(app, ["status"]).output, 120, "status: reachable")

        broker.stop_proxy()
        stopped = time.monotonic()
        record_batch(hub, [pyxis_event(n) for n in range(20, 40)])  # a round waits on the broker
        wait_until(
            lambda: "broker unreachable since" in run.invoke(app, ["status"]).output,
            120,
            "status reported the outage",
        )
        noticed = time.monotonic() - stopped
        assert noticed < delivery_timeout_s, "reported by the watch, before any delivery timed out"
        output = run.invoke(app, ["status"]).output
        assert "outbox: 20 events waiting" in output, output

        broker.start_proxy()
        wait_until(lambda: outbox_pending(hub) == 0, 180, "the backlog drained")
        wait_until(lambda: "broker reachable" in run.invoke(app, ["status"]).output, 120, "status: reachable")
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        for relay in relays:
            relay.close()
        hub.close()
    print(f"outage reported by status after {noticed:.1f} s")
