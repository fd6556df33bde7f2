"""Datadog telemetry end to end: ``saleshub serve`` with ``SALESHUB_TELEMETRY__MODE=datadog``.

Real things used: the hub as a ``python -m saleshub serve`` process on the test PostgreSQL; a Tansu
Kafka broker; Datadog's own APM test agent (PyPI ``ddapm-test-agent``, a process on a free port),
to which ddtrace sends its traces as to a real agent; a DogStatsD UDP listener
(``tests/support/dogstatsd.py``). Orders carry canary personal data that must not appear in any
span, metric or log line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from sqlalchemy import create_engine, text

from canonical.events import EventKind
from saleshub.platform.telemetry import RecordingTelemetry
from saleshub.receive.intake import InboundEvent, admit
from saleshub.runtime import HubRuntime
from saleshub.store.events import trace_carriers
from tests.integration.conftest import SECRET, SECRETS, acknowledged_offsets, free_port, wait_until
from tests.support.datadog_agent import DatadogTestAgent
from tests.support.dogstatsd import DogStatsdServer, StatsdMetric
from tests.support.synthetic import pyxis_event, signed_headers
from tests.support.tansu import CONSUMER_TIMINGS, TansuBroker, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "pyxis.sales.order_events"
CANARIES = ("Canaryfirst", "Canarylast", "canary.person", "699 000 111", "699000111", "Calle Canario")
# A producer's trace the Kafka-consumed order must continue (Datadog propagation headers).
PRODUCER_TRACE_ID, PRODUCER_SPAN_ID = 1234567890123, 9876543210


def canary_order(number: int, *, email: str = "canary.person@canary-mail.example") -> bytes:
    event = json.loads(pyxis_event(number))
    event["order"]["customer"].update(
        firstName="Canaryfirst", lastName="Canarylast Zz", email=email, phone="699 000 111"
    )
    event["order"]["serviceAddress"]["street"] = "Calle Canario 77"
    return json.dumps(event, ensure_ascii=False).encode()


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[DatadogTestAgent]:
    with DatadogTestAgent(tmp_path) as started:
        yield started


@pytest.fixture
def statsd() -> Iterator[DogStatsdServer]:
    with DogStatsdServer() as server:
        yield server


def start_serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "saleshub", "serve", "--port", str(port)],
            cwd=ROOT,
            # The settings decide the agent and the service tags, whatever DD_* the machine has.
            env={**{k: v for k, v in os.environ.items() if not k.startswith("DD_")}, **SECRETS, **env},
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, 90, "saleshub serve is ready")
    return process


def by_event(spans: list[dict[str, Any]], name: str, event_id: str) -> dict[str, Any]:
    found = [s for s in spans if s["name"] == name and s["meta"].get("event_id") == event_id]
    assert len(found) == 1, f"{name} spans of event {event_id}: {found}"
    return found[0]


def has(metrics: list[StatsdMetric], name: str, **tags: str) -> bool:
    return any(m.name == name and all(m.tags.get(k) == v for k, v in tags.items()) for m in metrics)


def test_an_order_is_traced_through_every_stage_with_metrics_and_no_personal_data(
    db_url: str, broker: TansuBroker, agent: DatadogTestAgent, statsd: DogStatsdServer, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {
        "SALESHUB_DATABASE__URL": db_url,
        "SALESHUB_DATABASE__DATA_DIR": str(tmp_path / "data"),
        "SALESHUB_LOG_LEVEL": "INFO",
        "SALESHUB_LOG_FORMAT": "json",
        "SALESHUB_TELEMETRY__MODE": "datadog",
        "SALESHUB_TELEMETRY__AGENT_URL": agent.url,
        "SALESHUB_TELEMETRY__STATSD_HOST": "127.0.0.1",
        "SALESHUB_TELEMETRY__STATSD_PORT": str(statsd.port),
        "SALESHUB_TELEMETRY__ENV": "test",
        "SALESHUB_TELEMETRY__VITALS_INTERVAL_SECONDS": "1",
        "SALESHUB_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
        "SALESHUB_KAFKA__INBOUND_TOPICS": json.dumps({"pyxis": TOPIC}),
        "SALESHUB_KAFKA__CONSUMER_CONFIG": json.dumps(CONSUMER_TIMINGS),
    }
    process = start_serve(env, port, log)
    try:
        mapped_body = canary_order(1)
        mapped = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/pyxis",
            content=mapped_body,
            headers=signed_headers(SECRET, "dd-1", mapped_body),
        )
        assert mapped.status_code == 202, mapped.text
        rejected_body = canary_order(2, email="Canaryfirst-at-nowhere")
        rejected = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/pyxis",
            content=rejected_body,
            headers=signed_headers(SECRET, "dd-2", rejected_body),
        )
        assert rejected.status_code == 202, rejected.text
        refused_body = b'{"not": "a pyxis event"'
        refused = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/pyxis",
            content=refused_body,
            headers=signed_headers(SECRET, "dd-3", refused_body),
        )
        assert refused.status_code == 422, refused.text
        producer = Producer({"bootstrap.servers": broker.direct_bootstrap})
        producer.produce(
            TOPIC,
            canary_order(3),
            b"ES_PX-SYN-000000003",
            headers=[
                ("x-datadog-trace-id", str(PRODUCER_TRACE_ID)),
                ("x-datadog-parent-id", str(PRODUCER_SPAN_ID)),
                ("x-datadog-sampling-priority", "1"),
            ],
        )
        assert producer.flush(10) == 0
        del producer  # its connections end before the broker does

        engine = create_engine(db_url)

        def settled() -> bool:
            with engine.connect() as conn:
                events = conn.execute(
                    text(
                        "SELECT count(*), count(*) FILTER (WHERE status = 'accepted') "
                        "FROM sales_system_integration_events"
                    )
                ).one()
                pending = conn.execute(text("SELECT count(*) FROM event_outbox WHERE published_at IS NULL"))
                return events[0] == 4 and events[1] == 0 and pending.scalar() == 0

        wait_until(settled, 180, "four events processed and their canonical events published")
        with engine.connect() as conn:
            statuses = dict(
                conn.execute(text("SELECT order_key, status FROM sales_system_integration_events")).all()
            )
            acknowledged = acknowledged_offsets(conn, EventKind.ORDER_RECEIVED.topic)
        engine.dispose()
        assert sorted(statuses.values()) == ["mapped", "mapped", "quarantined", "quarantined"], statuses
        published = read_topic(
            broker.direct_bootstrap, EventKind.ORDER_RECEIVED.topic, until=acknowledged, idle=0.5
        )
        wait_until(
            lambda: [m.value for m in statsd.metrics() if m.name == "saleshub.outbox.backlog"][-1:] == [0],
            120,
            "a vitals report after the backlog emptied",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()[-3000:]

    event_id = mapped.json()["event_id"]

    def publish_span_arrived() -> bool:
        return any(
            s["name"] == "saleshub.publish" and s["meta"].get("event_id") == event_id for s in agent.spans()
        )

    wait_until(publish_span_arrived, 120, "the agent received the order's publish span")
    spans = agent.spans()

    check_traces(spans, event_id, rejected.json()["event_id"], published)
    check_errors(spans, rejected.json()["event_id"], refused.json()["event_id"])
    check_no_background_traces(agent.traces())
    check_metrics(statsd.metrics())
    # No canary personal data anywhere: spans, metrics, log lines (every one JSON).
    seen = {"spans": json.dumps(spans), "metrics": "\n".join(statsd.packets), "logs": log.read_text()}
    for where, content in seen.items():
        for canary in CANARIES:
            assert canary not in content, f"{canary!r} leaked into the {where}"
    lines = [line for line in seen["logs"].splitlines() if line.strip()]
    assert lines and all(json.loads(line)["dd.service"] == "saleshub" for line in lines), lines[:5]


def check_traces(
    spans: list[dict[str, Any]], event_id: str, quarantined_id: str, published: list[Any]
) -> None:
    # The webhook: receive → record → process → store → publish, one trace, under the web framework's span.
    record = by_event(spans, "saleshub.record", event_id)
    receive = next(s for s in spans if s["span_id"] == record["parent_id"])
    assert receive["name"] == "saleshub.receive" and receive["meta"]["transport"] == "webhook"
    web = next(s for s in spans if s["span_id"] == receive["parent_id"])
    assert web["name"].startswith(("fastapi", "asgi")), web["name"]
    process_span = by_event(spans, "saleshub.process", event_id)
    store = next(
        s for s in spans if s["name"] == "saleshub.store" and s["parent_id"] == process_span["span_id"]
    )
    publish = by_event(spans, "saleshub.publish", event_id)
    assert process_span["parent_id"] == record["span_id"]
    assert publish["parent_id"] == store["span_id"]
    assert {s["trace_id"] for s in (receive, record, process_span, store, publish, web)} == {
        record["trace_id"]
    }
    assert {k: process_span["meta"][k] for k in ("system", "transport", "channel", "country", "status")} == {
        "system": "pyxis",
        "transport": "webhook",
        "channel": "IN_STORE",
        "country": "ES",
        "status": "mapped",
    }
    assert process_span["meta"]["mapping_revision"] and process_span["meta"]["mapping"].startswith(
        "pyxis/order@"
    )
    assert (
        publish["meta"]["status"] == "published"
        and publish["meta"]["topic"] == EventKind.ORDER_RECEIVED.topic
    )
    assert any(s["name"] == "postgres.query" for s in spans), "psycopg is instrumented"
    assert all(s["service"] == "saleshub" or s["name"] != "saleshub.process" for s in spans)
    assert process_span["meta"]["env"] == "test" and process_span["meta"]["version"]

    # The quarantined event: its process span says why, without the value.
    why = by_event(spans, "saleshub.process", quarantined_id)
    assert why["meta"]["status"] == "quarantined" and why["meta"]["stage"] == "mapping"

    # The Kafka-consumed order continues the producer's trace, through to its own publication.
    consumed = [s for s in spans if s["name"] == "saleshub.receive" and s["meta"].get("transport") == "kafka"]
    assert len(consumed) == 1 and consumed[0]["trace_id"] == PRODUCER_TRACE_ID
    assert consumed[0]["parent_id"] == PRODUCER_SPAN_ID
    in_producer_trace = {s["name"] for s in spans if s["trace_id"] == PRODUCER_TRACE_ID}
    assert {"saleshub.record", "saleshub.process", "saleshub.store", "saleshub.publish"} <= in_producer_trace

    # The relay propagates each publish span in the record's headers.
    by_key = {m.key(): dict(m.headers() or []) for m in published}
    headers = by_key[b"ES_PX-SYN-000000001"]
    assert int(headers["x-datadog-trace-id"]) == publish["trace_id"]
    assert int(headers["x-datadog-parent-id"]) == publish["span_id"]


def check_errors(spans: list[dict[str, Any]], quarantined_id: str, refused_id: str) -> None:
    # Quarantined and refused events are errors on their spans (Datadog's error flag), not only tags.
    quarantined = by_event(spans, "saleshub.process", quarantined_id)
    assert quarantined["error"] == 1, quarantined
    assert quarantined["meta"]["error.type"] and "quarantined" in quarantined["meta"]["error.message"]
    refused = by_event(spans, "saleshub.record", refused_id)
    assert refused["error"] == 1 and refused["meta"]["status"] == "quarantined", refused
    assert "quarantined" in refused["meta"]["error.message"]
    mapped = [s for s in spans if s["name"] == "saleshub.process" and s["meta"].get("status") == "mapped"]
    assert mapped and all(s["error"] == 0 for s in mapped)


def check_no_background_traces(traces: list[list[dict[str, Any]]]) -> None:
    # The hub idled for seconds (processor polls, lane leases, heartbeats, vitals): none of it is a
    # trace; every trace starts at a request, a consumed record or a stage of the flow.
    roots = [span for trace in traces for span in trace if not span.get("parent_id")]
    background = [r for r in roots if r.get("type") == "sql" or r["meta"].get("component") == "psycopg"]
    named = sorted({f"{r['name']} {r['resource'][:60]}" for r in background})
    assert background == [], f"{len(background)} background database traces: {named[:5]}"
    assert roots


def check_metrics(metrics: list[StatsdMetric]) -> None:
    # Metrics, with the documented names and tags.
    assert has(metrics, "saleshub.webhook.responses", system="pyxis", status_code="202", service="saleshub")
    assert has(metrics, "saleshub.events.recorded", system="pyxis", transport="kafka", status="accepted")
    assert has(
        metrics,
        "saleshub.events.finished",
        system="pyxis",
        transport="webhook",
        status="mapped",
        channel="IN_STORE",
        country="ES",
        env="test",
    )
    assert has(metrics, "saleshub.events.finished", status="quarantined")
    assert has(metrics, "saleshub.process.latency", system="pyxis", status="mapped")
    assert has(metrics, "saleshub.publish.published", topic=EventKind.ORDER_RECEIVED.topic, system="pyxis")
    for gauge in (
        "saleshub.process.queue_depth",
        "saleshub.outbox.backlog",
        "saleshub.outbox.oldest_age",
        "saleshub.process.queue_oldest_age",
    ):
        assert has(metrics, gauge), gauge
    assert [m.value for m in metrics if m.name == "saleshub.outbox.backlog"][-1] == 0


def test_the_processor_continues_the_recorded_trace_and_hands_its_own_to_the_relay(hub: HubRuntime) -> None:
    """With the recording backend: spans, the carriers stored in ``headers`` → ``trace``, the counts."""
    telemetry = RecordingTelemetry()
    hub.telemetry = hub.recorder.telemetry = telemetry
    event = InboundEvent(
        "pyxis", "webhook", canary_order(7), "application/json", trace={"x-recording-span": "41"}
    )
    receipt = hub.recorder.record(event, admit(event, hub.adapters["pyxis"]))
    with hub.database.engine.connect() as conn:
        assert trace_carriers(conn, [(receipt.event_id, event.received_at)]) == {
            receipt.event_id: {"x-recording-span": "41"}
        }
    assert hub.processor().drain().statuses == {"mapped": 1}
    spans = {span.stage: span for span in telemetry.spans}
    assert spans["process"].parent_id == 41 and spans["store"].parent_id == spans["process"].span_id
    assert spans["process"].tags["status"] == "mapped" and spans["process"].tags["country"] == "ES"
    assert spans["process_batch"].tags == {"events": 1}
    with hub.database.engine.connect() as conn:
        stored = trace_carriers(conn, [(receipt.event_id, event.received_at)])[receipt.event_id]
    assert stored == {"x-recording-span": str(spans["store"].span_id)}
    counted = {(name, tags.get("status")) for _, name, _, tags in telemetry.metrics}
    assert ("saleshub.events.recorded", "accepted") in counted
    assert ("saleshub.events.finished", "mapped") in counted
    assert ("saleshub.process.latency", "mapped") in counted


def test_a_quarantined_event_fails_its_process_span(hub: HubRuntime) -> None:
    telemetry = RecordingTelemetry()
    hub.telemetry = hub.recorder.telemetry = telemetry
    event = InboundEvent("pyxis", "webhook", canary_order(8, email="not-an-address"), "application/json")
    hub.recorder.record(event, admit(event, hub.adapters["pyxis"]))
    assert hub.processor().drain().statuses == {"quarantined": 1}
    spans = {span.stage: span for span in telemetry.spans}
    assert spans["process"].failed and spans["process"].tags["status"] == "quarantined"
    assert spans["process"].tags["error.type"]
