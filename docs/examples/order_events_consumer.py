"""Read the hub's three order topics together and apply each order's versions in order.

An example for a consuming service (see ``docs/consuming-order-events.md``); it needs only
``confluent-kafka``, ``fastavro`` and the committed schemas in ``contracts/avro/events``:

    python docs/examples/order_events_consumer.py --bootstrap HOST:PORT [--idle 5]

It prints ``applied <key> v<N> <kind>`` for each version it applies, ``held …`` for an event that
arrived before the version it follows (from another topic), ``skipped …`` for a repeat, and at the
end ``still held: N``. The consumer's state (the last version applied per key, the held events) is
kept in memory and the topics are read from the beginning at every start; a real consumer keeps
that state in its own database and commits offsets as the document explains.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Consumer
from fastavro.schema import fingerprint, to_parsing_canonical_form

TOPICS = [f"integration.sales.{kind}" for kind in ("order_received", "order_updated", "order_cancelled")]
SINGLE_OBJECT_MARKER = b"\xc3\x01"


def load_schemas(contracts: Path) -> dict[bytes, Any]:
    """Every committed schema by its CRC-64-AVRO fingerprint (8 bytes, as records carry it)."""
    schemas = {}
    for path in contracts.glob("*/v*.avsc"):
        parsed = fastavro.parse_schema(json.loads(path.read_text("utf-8")))
        digest = fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")
        schemas[bytes.fromhex(digest)] = parsed
    return schemas


def decode(value: bytes, schemas: dict[bytes, Any]) -> dict[str, Any]:
    """An Avro single-object encoded value: ``C3 01``, the writer schema's fingerprint, the body."""
    if value[:2] != SINGLE_OBJECT_MARKER:
        raise ValueError("not Avro single-object encoding (with a schema registry, use its deserializer)")
    record = fastavro.schemaless_reader(io.BytesIO(value[10:]), schemas[value[2:10]], None)
    if not isinstance(record, dict):
        raise ValueError("the value is not an Avro record")
    return record


class OrderState:
    """Per key: the last version applied, and events that came before the version they follow."""

    def __init__(self) -> None:
        self.applied: dict[str, int] = {}
        self.held: dict[str, dict[int, str]] = {}

    def receive(self, key: str, version: int, follows: int | None, kind: str) -> None:
        """Apply the event if it follows the last applied version, hold it if early, skip a repeat."""
        last = self.applied.get(key)
        if last is not None and version <= last:
            print(f"skipped {key} v{version} {kind} (v{last} already applied)")
            return
        if follows != last:  # an earlier version is still on its way, on another topic
            print(f"held {key} v{version} {kind} (waiting for v{follows})")
            self.held.setdefault(key, {})[version] = kind
            return
        self.apply(key, version, kind)
        waiting = self.held.get(key, {})
        while (last := self.applied[key]) + 1 in waiting:
            self.apply(key, last + 1, waiting.pop(last + 1))
        if not waiting:
            self.held.pop(key, None)

    def apply(self, key: str, version: int, kind: str) -> None:
        """Here a real consumer does its work, and stores ``version`` with it in one transaction."""
        self.applied[key] = version
        print(f"applied {key} v{version} {kind}")


def main() -> None:
    """Consume until no record arrives for ``--idle`` seconds."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", default="order-events-example")
    parser.add_argument("--contracts", type=Path, default=Path("contracts/avro/events"))
    parser.add_argument("--idle", type=float, default=5.0)
    args = parser.parse_args()
    schemas = load_schemas(args.contracts)
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )
    consumer.subscribe(TOPICS)
    state = OrderState()
    last_record = time.monotonic()
    try:
        while time.monotonic() - last_record < args.idle:
            for message in consumer.consume(500, 0.5):
                if message.error() is not None:
                    raise RuntimeError(str(message.error()))
                record = decode(message.value() or b"", schemas)
                version = record["version_no"]
                # Records written with schema v1 lack previous_version_no: it is always version - 1.
                follows = record.get("previous_version_no") or (version - 1 if version > 1 else None)
                kind = (message.topic() or "").rsplit(".", 1)[1]
                state.receive((message.key() or b"").decode(), version, follows, kind)
                last_record = time.monotonic()
    finally:
        consumer.close()
    print(f"still held: {sum(len(events) for events in state.held.values())}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
