"""The committed Avro event contracts: current, backward compatible version to version, written strictly.

Rules (``contracts/avro/README.md``): the newest ``contracts/avro/events/<kind>/v<N>.avsc`` is exactly
what the code writes, and every version can read data written with the version before it.
"""

from __future__ import annotations

import io
import itertools
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from adapters.registry import AdapterRegistry
from canonical.events import EventKind, event_schema
from saleshub.mapping.catalog import MappingCatalog
from saleshub.publish.outbox import Outbox
from saleshub.publish.schemas import EventSchemas, WriterSchema
from tests.conftest import MAPPINGS

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts" / "avro" / "events"


def versions(kind: EventKind) -> list[tuple[int, dict[str, Any]]]:
    found = [
        (int(path.stem[1:]), json.loads(path.read_text("utf-8")))
        for path in (CONTRACTS / kind.value).glob("v*.avsc")
    ]
    return sorted(found, key=lambda item: item[0])


def backward_compatible(reader: dict[str, Any], writer: dict[str, Any]) -> tuple[bool, str]:
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer))
    )
    return result.compatibility is SchemaCompatibilityType.compatible, "; ".join(result.messages)


@pytest.mark.parametrize("kind", list(EventKind), ids=str)
def test_the_newest_committed_version_is_what_the_hub_writes(kind: EventKind) -> None:
    committed = versions(kind)
    assert committed, f"no committed schema for {kind}"
    number, newest = committed[-1]
    assert [n for n, _ in committed] == list(range(1, number + 1)), (
        "versions are numbered 1, 2, 3 … without gaps"
    )
    assert newest == event_schema(kind), (
        f"the {kind} schema changed: commit it as contracts/avro/events/{kind}/v{number + 1}.avsc "
        f"(python -m canonical.events {kind}) following contracts/avro/README.md"
    )


@pytest.mark.parametrize("kind", list(EventKind), ids=str)
def test_each_version_reads_data_written_with_the_previous_one(kind: EventKind) -> None:
    committed = versions(kind)
    if len(committed) < 2:
        pytest.skip(f"only v1 of {kind} is committed; the check starts with v2 (its own test is below)")
    for (_, previous), (number, current) in itertools.pairwise(committed):
        ok, why = backward_compatible(current, previous)
        assert ok, f"{kind} v{number} cannot read v{number - 1} data: {why}"


def test_the_compatibility_check_catches_a_new_field_without_default() -> None:
    v1 = event_schema(EventKind.ORDER_REJECTED)
    v2 = json.loads(json.dumps(v1))
    v2["fields"].append({"name": "operator_note", "type": "string"})
    assert not backward_compatible(v2, v1)[0]
    v2["fields"][-1]["default"] = ""
    assert backward_compatible(v2, v1)[0]


def rejection(**extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "occurred_at": datetime(2026, 11, 20, 8, 15, tzinfo=UTC),
        "source_system": "pyxis",
        "transport": "kafka",
        "status": "quarantined",
        "stage": "decode",
        "error": "DecodeError",
        "message": "body is not JSON",
        "event_type": None,
        "mapping": None,
        "field_errors": [],
    }
    record.update(extra)
    return record


def test_writers_are_strict_no_field_is_silently_dropped() -> None:
    schema = EventSchemas().current[EventKind.ORDER_REJECTED]
    assert schema.decode(schema.encode(rejection()))["stage"] == "decode"
    with pytest.raises(ValueError, match="operator_note"):
        schema.encode(rejection(operator_note="typo'd field"))


def test_an_order_event_round_trips_through_its_committed_schema() -> None:
    adapter = AdapterRegistry.default().create("pyxis", MappingCatalog.load(MAPPINGS))
    body = (ROOT / "contracts" / "samples" / "pyxis" / "01_es_in_store_created.json").read_bytes()
    order = adapter.translate(body).mapped.order
    row = Outbox().order_row(
        EventKind.ORDER_RECEIVED,
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        order=order,
        version_no=1,
        mapping="pyxis/order@test",
    )
    (_, newest) = versions(EventKind.ORDER_RECEIVED)[-1]
    record = fastavro.schemaless_reader(io.BytesIO(row["payload"]), fastavro.parse_schema(newest), None)
    assert isinstance(record, dict)
    assert record["order"]["external_order_id"] == order.external_order_id
    assert row["message_key"] == f"{order.country_code}_{order.external_order_id}"
    assert row["schema_fingerprint"] == WriterSchema.of(EventKind.ORDER_RECEIVED, newest).fingerprint_id
