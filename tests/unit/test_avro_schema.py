from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest

from canonical import ServiceOrder
from canonical.avro import order_from_avro, order_to_avro, service_order_schema

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "contracts/avro/service_order.avsc"
EXPECTED_ORDERS = sorted(ROOT.glob("contracts/samples/*/*.expected.json"))


def test_committed_schema_equals_the_model_derivation() -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == service_order_schema(), (
        "contracts/avro/service_order.avsc is out of date with canonical/model.py; "
        "regenerate it with: python -m canonical.avro > contracts/avro/service_order.avsc"
    )


def test_every_model_field_is_in_the_schema() -> None:
    schema = service_order_schema()
    assert [f["name"] for f in schema["fields"]] == list(ServiceOrder.model_fields)


@pytest.mark.parametrize("path", EXPECTED_ORDERS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_orders_round_trip_through_avro_strictly(path: Path) -> None:
    expected = json.loads(path.read_text(encoding="utf-8"))
    if "order" not in expected:
        pytest.skip("negative sample")
    order = ServiceOrder.model_validate(expected["order"])
    parsed = fastavro.parse_schema(service_order_schema())
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, order_to_avro(order), strict=True)
    buffer.seek(0)
    again = order_from_avro(fastavro.schemaless_reader(buffer, parsed))
    assert again == order
    assert again.fingerprint() == order.fingerprint()
