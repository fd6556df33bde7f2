"""Integration fixtures: a real PostgreSQL (embedded, from pgserver) started once per test session.

The schema is migrated once into a template database; every test gets its own database copied from
it (``CREATE DATABASE … TEMPLATE``, a fraction of a second), so tests never see each other's rows.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from confluent_kafka import Message
from sqlalchemy import Connection, create_engine, func, select, text
from sqlalchemy.engine import make_url

from saleshub.platform.secrets import EnvSecretStore
from saleshub.platform.settings import Settings
from saleshub.receive.app import create_app
from saleshub.receive.intake import InboundEvent, admit
from saleshub.receive.recorder import Receipt
from saleshub.runtime import HubRuntime
from saleshub.services import Services
from saleshub.store.embedded import EmbeddedPostgres
from saleshub.store.events import EventOutcome, Status, event_outcomes
from saleshub.store.migrate import upgrade
from saleshub.store.outbox import backlog
from saleshub.store.partitions import ensure_partitions
from saleshub.store.tables import event_outbox
from tests.conftest import MAPPINGS, ROOT
from tests.support.schema_registry import SchemaRegistryServer
from tests.support.tansu import CONSUMER_TIMINGS, TansuBroker, read_topic

SECRET = "whsec_" + base64.b64encode(b"synthetic-test-secret-32-bytes!!").decode()
SECRETS = {f"SALESHUB_SECRET_WEBHOOK_{system}": SECRET for system in ("PYXIS", "TEMPO", "ERP")}
TEMPLATE = "saleshub_template"


@pytest.fixture(scope="session")
def pg_base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    url = server.start()
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {TEMPLATE}"))
    engine.dispose()
    template = create_engine(make_url(url).set(database=TEMPLATE))
    upgrade(template)
    with template.begin() as conn:
        ensure_partitions(conn)
    template.dispose()
    yield url
    server.stop()


@pytest.fixture
def db_url(pg_base_url: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(pg_base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
    yield make_url(pg_base_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def open_hub(db_url: str, mappings: Path = MAPPINGS, **groups: dict[str, object]) -> HubRuntime:
    """A runtime on ``db_url`` with the test secrets (not the process environment).

    ``groups`` are settings groups as dicts: ``open_hub(url, web={"max_body_bytes": 2048})``.
    """
    settings = Settings(
        database={"url": db_url, "pool_size": 8},  # type: ignore[arg-type]
        mappings_dir=mappings,
        **groups,  # type: ignore[arg-type]
    )
    hub = HubRuntime.open(settings)
    hub.secrets = EnvSecretStore(SECRETS)
    return hub


@pytest.fixture
def hub(db_url: str) -> Iterator[HubRuntime]:
    runtime = open_hub(db_url)
    yield runtime
    runtime.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """uvicorn serving an app in a background thread, on a free loopback port, with a processor."""

    def __init__(self, hub: HubRuntime) -> None:
        self.hub = hub
        self.services: Services | None = None
        self.port = free_port()
        config = uvicorn.Config(create_app(hub), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.services = Services.start(self.hub, processors=1)
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 120 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        if self.services is not None:
            self.services.stop()


@pytest.fixture
def server(hub: HubRuntime) -> Iterator[httpx.Client]:
    with LiveServer(hub) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        yield client


@pytest.fixture
def fixed_mappings(tmp_path: Path) -> Path:
    """A copy of the mappings with the KIOSK channel added (the stewards' guide's worked example)."""
    target = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, target)
    with (target / "crosswalks" / "channels.csv").open("a", encoding="utf-8") as handle:
        handle.write("IN_STORE,KIOSK,,,In-store self-service kiosk\n")
    return target


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A fresh Tansu broker behind a Tansu proxy, for one test."""
    with TansuBroker(with_proxy=True, log_dir=tmp_path) as started:
        yield started


@pytest.fixture
def kafka_hub(db_url: str, broker: TansuBroker) -> Iterator[HubRuntime]:
    """A runtime on its own database, publishing to the test broker."""
    runtime = open_hub(
        db_url,
        kafka={"bootstrap_servers": broker.bootstrap, "consumer_config": CONSUMER_TIMINGS},
        relay={"message_timeout_ms": 5000},
    )
    yield runtime
    runtime.close()


@pytest.fixture
def schema_registry() -> Iterator[str]:
    """The URL of a loopback schema registry (documented Confluent REST API subset)."""
    with SchemaRegistryServer() as registry:
        yield registry.url


def record_batch(hub: HubRuntime, bodies: list[bytes], system: str = "pyxis") -> None:
    """Record ``bodies`` in one transaction, as a webhook batch would be, and process them."""
    adapter = hub.adapters[system]
    items = []
    for body in bodies:
        event = InboundEvent(system, "webhook", body, "application/json")
        items.append((event, admit(event, adapter)))
    hub.recorder.record_batch(items)
    hub.processor().drain()


def processed(hub: HubRuntime, event_id: uuid.UUID | str, timeout: float = 120.0) -> EventOutcome:
    """The event's state once a processor has processed it (fails after ``timeout`` seconds)."""
    wanted = uuid.UUID(str(event_id))
    deadline = time.monotonic() + timeout
    while True:
        with hub.database.engine.connect() as conn:
            outcome = event_outcomes(conn, [wanted])[wanted]
        if outcome.status is not Status.ACCEPTED:
            return outcome
        if time.monotonic() > deadline:
            raise AssertionError(f"event {wanted} was not processed within {timeout} s")
        time.sleep(0.05)


def ingest(hub: HubRuntime, event: InboundEvent, timeout: float = 120.0) -> Receipt:
    """Record ``event``, process the queue, and return the event's final state (as a receipt)."""
    receipt = hub.recorder.record(event, admit(event, hub.adapters[event.system]))
    deadline = time.monotonic() + timeout
    while True:
        hub.processor().drain()
        with hub.database.engine.connect() as conn:
            outcome = event_outcomes(conn, [receipt.event_id])[receipt.event_id]
        if outcome.status is not Status.ACCEPTED or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # its lane is held by another processor: it finishes shortly
    return Receipt(
        outcome.event_id,
        outcome.status,
        repeated=receipt.repeated,
        stage=outcome.stage,
        errors=outcome.errors,
        hub_order_id=outcome.hub_order_id,
        order_version_no=outcome.order_version_no,
    )


def outbox_pending(hub: HubRuntime) -> int:
    """Outbox rows not yet acknowledged by Kafka."""
    with hub.database.engine.connect() as conn:
        return backlog(conn).pending


def acknowledged_offsets(conn: Connection, topic: str) -> dict[int, int]:
    """Per partition of ``topic``, the highest offset the broker acknowledged to the relay."""
    query = (
        select(event_outbox.c.kafka_partition, func.max(event_outbox.c.kafka_offset))
        .where(event_outbox.c.topic == topic, event_outbox.c.kafka_offset.is_not(None))
        .group_by(event_outbox.c.kafka_partition)
    )
    return {int(partition): int(offset) for partition, offset in conn.execute(query)}


def read_published(hub: HubRuntime, broker: TansuBroker, topic: str) -> list[Message]:
    """Every record of ``topic`` on the broker, read at least up to what the outbox says it acknowledged."""
    with hub.database.engine.connect() as conn:
        acknowledged = acknowledged_offsets(conn, topic)
    return read_topic(broker.direct_bootstrap, topic, until=acknowledged)


def start_kafka_command(
    command: str, db_url: str, tmp_path: Path, settings: dict[str, str]
) -> subprocess.Popen[bytes]:
    """``saleshub kafka <command>`` as a process of its own (so a test can SIGKILL it).

    ``settings`` are ``SALESHUB_*`` variables besides the database; stderr goes to
    ``<tmp_path>/<command>.log`` for a failing test to show.
    """
    env = {
        **os.environ,
        "SALESHUB_DATABASE__URL": db_url,
        "SALESHUB_DATABASE__DATA_DIR": str(tmp_path / "data"),
        "SALESHUB_LOG_LEVEL": "WARNING",
        **settings,
    }
    with (tmp_path / f"{command}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "saleshub", "kafka", command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.2 s; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting until {what}")
