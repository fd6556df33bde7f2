"""The transactional outbox and its relay against a real Kafka-protocol broker (Tansu).

Published records must decode with fastavro against the committed contracts, carry the CloudEvents
headers, keep each key's order, and survive a broker outage and a relay killed mid-burst.
"""

from __future__ import annotations

import io
import json
import signal
import threading
from collections import defaultdict
from pathlib import Path

import fastavro
import httpx
import pytest
from confluent_kafka import Message, Producer
from sqlalchemy import func, select

from canonical.events import EventKind
from saleshub.publish.framing import unframe
from saleshub.publish.schemas import WriterSchema
from saleshub.receive.intake import InboundEvent
from saleshub.runtime import HubRuntime
from saleshub.services import build_relay
from saleshub.store.events import Status
from saleshub.store.outbox import backlog
from saleshub.store.tables import event_outbox, integration_events
from tests.integration.conftest import (
    SECRET,
    free_port,
    open_hub,
    outbox_pending,
    read_published,
    record_batch,
    wait_until,
)
from tests.integration.conftest import ingest as ingest_event
from tests.integration.test_crash_recovery import start_hub
from tests.support.synthetic import pyxis_event, signed_headers
from tests.support.tansu import CONSUMER_TIMINGS, TansuBroker, read_topic

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "contracts" / "samples" / "pyxis"
CONTRACTS = ROOT / "contracts" / "avro" / "events"


def committed(kind: EventKind) -> WriterSchema:
    """The newest committed schema of ``kind`` (the one the hub writes)."""
    newest = max((CONTRACTS / kind.value).glob("v*.avsc"), key=lambda path: int(path.stem[1:]))
    return WriterSchema.of(kind, json.loads(newest.read_text()))


def ingest(hub: HubRuntime, body: bytes, key: str | None = None) -> None:
    ingest_event(hub, InboundEvent("pyxis", "webhook", body, "application/json", idempotency_key=key))


def decode(message: Message) -> tuple[EventKind, dict[str, object], dict[str, str]]:
    headers = {key: (value or b"").decode() for key, value in message.headers() or []}
    kind = EventKind((message.topic() or "").rsplit(".", 1)[1])
    framed = unframe(message.value() or b"")
    schema = committed(kind)
    assert framed.framing == "single-object" and framed.schema_ref == schema.fingerprint
    record = fastavro.schemaless_reader(io.BytesIO(framed.body), schema.parsed, None)
    assert isinstance(record, dict)
    return kind, record, headers


def test_published_events_decode_against_the_contracts_and_carry_cloudevents(
    kafka_hub: HubRuntime, broker: TansuBroker
) -> None:
    for name in ("01_es_in_store_created", "05_es_in_store_updated", "06_es_in_store_cancelled"):
        ingest(kafka_hub, (SAMPLES / f"{name}.json").read_bytes())
    ingest(
        kafka_hub, (SAMPLES / "01_es_in_store_created.json").read_bytes(), key="again"
    )  # duplicate: no event
    ingest(kafka_hub, (SAMPLES / "90_rejected_unknown_codes.json").read_bytes())
    ingest(kafka_hub, b'{"not": "an order"', key="broken-json")
    with kafka_hub.database.engine.connect() as conn:
        assert backlog(conn).pending == 5
    relay = build_relay(kafka_hub)
    assert relay.drain(timeout=30) == 5
    relay.close()

    with kafka_hub.database.engine.connect() as conn:
        assert backlog(conn).pending == 0
        events = {str(r.event_id): r for r in conn.execute(select(integration_events))}
        outbox = conn.execute(select(event_outbox)).all()
    assert all(row.published_at is not None and row.kafka_offset is not None for row in outbox)

    seen: dict[EventKind, list[dict[str, object]]] = defaultdict(list)
    for kind in EventKind:
        for message in read_published(kafka_hub, broker, kind.topic):
            decoded_kind, record, headers = decode(message)
            seen[decoded_kind].append(record)
            event = events[headers["ce_id"]]
            assert headers["ce_specversion"] == "1.0"
            assert headers["ce_source"] == "/saleshub/pyxis"
            assert headers["ce_type"] == kind.ce_type
            assert headers["ce_time"].endswith("Z")
            assert headers["content-type"] == "application/avro"
            assert headers["ce_dataschema"] == f"urn:avro:crc-64-avro:{committed(kind).fingerprint.hex()}"
            assert str(record["event_id"]) == headers["ce_id"]
            if kind is EventKind.ORDER_REJECTED:
                assert message.key() == f"pyxis_{event.event_id}".encode()
                assert record["status"] == Status.QUARANTINED.value
                assert "ce_subject" not in headers
            else:
                assert message.key() == b"ES_PX-ES-2026-000123"
                assert headers["ce_subject"] == str(event.hub_order_id)
                assert record["version_no"] == event.order_version_no
                assert record["previous_version_no"] == (event.order_version_no - 1 or None)
                assert "lucia" not in json.dumps(headers).lower()  # no personal data in headers
    assert [r["version_no"] for r in seen[EventKind.ORDER_RECEIVED]] == [1]
    assert [r["version_no"] for r in seen[EventKind.ORDER_UPDATED]] == [2]
    cancelled = seen[EventKind.ORDER_CANCELLED]
    assert len(cancelled) == 1 and cancelled[0]["order"]["status"] == "CANCELLED"  # type: ignore[index]
    stages = sorted(str(r["stage"]) for r in seen[EventKind.ORDER_REJECTED])
    assert stages == ["decode", "mapping"]
    mapping_rejection = next(r for r in seen[EventKind.ORDER_REJECTED] if r["stage"] == "mapping")
    assert mapping_rejection["field_errors"], "the field errors travel with the rejection"


def test_each_key_keeps_its_order_over_1000_updates_of_50_orders_with_two_relays(
    kafka_hub: HubRuntime, broker: TansuBroker
) -> None:
    revisions = 20
    bodies = [
        pyxis_event(order, revision=revision, notes=f"revision {revision}")
        for revision in range(1, revisions + 1)
        for order in range(50)
    ]
    stop = threading.Event()
    relays = [build_relay(kafka_hub) for _ in range(2)]
    for relay in relays:
        relay.batch_size = 97  # many small rounds, so the two relays interleave
    threads = [threading.Thread(target=relay.run, args=(stop, 0.01)) for relay in relays]
    for thread in threads:
        thread.start()
    try:
        for start in range(0, len(bodies), 50):
            record_batch(kafka_hub, bodies[start : start + 50])
        wait_until(lambda: outbox_pending(kafka_hub) == 0, 60, "both relays drained the outbox")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    for relay in relays:
        relay.close()
    with kafka_hub.database.engine.connect() as conn:
        assert backlog(conn).pending == 0
        assert conn.execute(select(func.count()).select_from(event_outbox)).scalar() == 1000

    per_key: dict[bytes, list[int]] = defaultdict(list)
    ids: list[str] = []
    messages = read_published(kafka_hub, broker, EventKind.ORDER_RECEIVED.topic)
    messages += read_published(kafka_hub, broker, EventKind.ORDER_UPDATED.topic)
    for message in sorted(messages, key=lambda m: (m.topic() != EventKind.ORDER_RECEIVED.topic, m.offset())):
        _, record, headers = decode(message)
        ids.append(headers["ce_id"])
        per_key[message.key() or b""].append(int(record["version_no"]))  # type: ignore[call-overload]
    assert len(ids) == len(set(ids)) == 1000, "two relays never published a row twice"
    assert len(per_key) == 50
    for key, versions in per_key.items():
        assert versions == list(range(1, revisions + 1)), key


def test_registry_framing_when_a_registry_url_is_set(
    db_url: str, broker: TansuBroker, schema_registry: str
) -> None:
    hub = open_hub(
        db_url, kafka={"bootstrap_servers": broker.bootstrap, "schema_registry_url": schema_registry}
    )
    try:
        ingest(hub, (SAMPLES / "01_es_in_store_created.json").read_bytes())
        relay = build_relay(hub)
        assert relay.drain(timeout=30) == 1
        relay.close()
    finally:
        hub.close()
    (message,) = read_topic(broker.direct_bootstrap, EventKind.ORDER_RECEIVED.topic)
    framed = unframe(message.value() or b"")
    assert framed.framing == "registry"
    registered = httpx.get(f"{schema_registry}/schemas/ids/{framed.schema_ref}").json()
    schema = fastavro.parse_schema(json.loads(registered["schema"]))
    record = fastavro.schemaless_reader(io.BytesIO(framed.body), schema, None)
    assert isinstance(record, dict) and record["version_no"] == 1
    headers = dict(message.headers() or [])
    assert headers["ce_dataschema"].decode() == f"{schema_registry}/schemas/ids/{framed.schema_ref}"
    subjects = httpx.get(f"{schema_registry}/subjects").json()
    assert subjects == ["integration.sales.order_received-value"]


def test_serve_publishes_webhook_orders_and_consumes_the_pyxis_topic(
    db_url: str, broker: TansuBroker, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "SALESHUB_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
        "SALESHUB_KAFKA__INBOUND_TOPICS": json.dumps({"pyxis": "pyxis.sales.order_events"}),
        "SALESHUB_KAFKA__CONSUMER_CONFIG": json.dumps(CONSUMER_TIMINGS),
    }
    producer = Producer({"bootstrap.servers": broker.direct_bootstrap})
    producer.produce("pyxis.sales.order_events", pyxis_event(2), b"ES_PX-SYN-000000002")
    assert producer.flush(10) == 0
    process = start_hub(db_url, port, tmp_path / "data", env)
    try:
        body = pyxis_event(1)
        response = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/pyxis",
            content=body,
            headers=signed_headers(SECRET, "serve-kafka-1", body),
        )
        assert response.status_code == 202
        expected = {b"ES_PX-SYN-000000001", b"ES_PX-SYN-000000002"}

        def both_published() -> bool:
            topic = EventKind.ORDER_RECEIVED.topic
            return {m.key() for m in read_topic(broker.direct_bootstrap, topic, idle=0.5)} == expected

        wait_until(both_published, 60, "the webhook order and the topic order were both published")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
