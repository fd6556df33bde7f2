from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from canonical import Money, ServiceOrder, hub_order_id_for
from canonical.fingerprint import order_fingerprint

SAMPLE = (
    Path(__file__).resolve().parents[2]
    / "contracts/samples/pyxis/07_fr_partner_company_multiline.expected.json"
)


def order_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))["order"]
    return data


def errors_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        ServiceOrder.model_validate(data)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in info.value.errors()]


def test_golden_order_validates_and_round_trips_through_json() -> None:
    order = ServiceOrder.model_validate(order_data())
    again = ServiceOrder.model_validate_json(order.model_dump_json())
    assert again == order
    assert order.currency == "EUR"


def test_hub_order_id_is_derived_from_identity() -> None:
    data = order_data()
    del data["hub_order_id"]
    order = ServiceOrder.model_validate(data)
    assert order.hub_order_id == hub_order_id_for("pyxis", "PX-FR-2026-004990")
    data["hub_order_id"] = str(hub_order_id_for("pyxis", "other"))
    assert any("hub_order_id must be" in msg for _, msg in errors_of(data))


def test_floats_are_refused_for_money_and_quantities() -> None:
    with pytest.raises(ValidationError, match="never floats"):
        Money(amount=19.99, currency="EUR")  # type: ignore[arg-type]
    data = order_data()
    data["lines"][0]["quantity"] = 1.5
    assert any("quantity" in loc and "floats" in msg for loc, msg in errors_of(data))


def test_money_respects_the_currency_scale() -> None:
    assert Money(amount=Decimal("75.5"), currency="EUR").amount == Decimal("75.50")
    assert str(Money(amount=Decimal("75.5"), currency="EUR").amount) == "75.50"
    assert Money(amount=Decimal("1999"), currency="JPY").minor_units == 1999
    with pytest.raises(ValidationError, match="more decimal places than EUR allows"):
        Money(amount=Decimal("1.999"), currency="EUR")
    with pytest.raises(ValidationError, match="not an ISO 4217"):
        Money(amount=Decimal(1), currency="XYZ")
    with pytest.raises(ValidationError, match="finite"):
        Money(amount=Decimal("NaN"), currency="EUR")


@pytest.mark.parametrize(
    ("path", "value", "expected_loc", "expected_msg"),
    [
        (("country_code",), "XX", "country_code", "not an ISO 3166-1"),
        (("customer", "phone"), "612345678", "customer.phone", "E.164"),
        (("customer", "email"), "no-at-sign", "customer.email", "e-mail"),
        (("customer", "language"), "xx", "customer.language", "639-1"),
        (("sales_channel",), "FAX", "sales_channel", "IN_STORE"),
        (("ordered_at",), "2026-11-20T10:00:00", "ordered_at", "timezone"),
        (("bu_code",), "lm es", "bu_code", "pattern"),
    ],
)
def test_validation_errors_name_field_and_rule(
    path: tuple[str, ...], value: Any, expected_loc: str, expected_msg: str
) -> None:
    data = order_data()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    found = errors_of(data)
    assert any(loc == expected_loc and expected_msg in msg for loc, msg in found), found


def test_order_level_rules() -> None:
    data = order_data()
    data["lines"][1]["unit_price"]["currency"] = "PLN"
    assert any("but the order total is in EUR" in msg for _, msg in errors_of(data))
    data = order_data()
    data["lines"][1]["line_number"] = 1
    assert any("line numbers repeat" in msg for _, msg in errors_of(data))
    data = order_data()
    data["lines"] = []
    assert any("at least one line" in msg for _, msg in errors_of(data))
    data["status"] = "CANCELLED"
    ServiceOrder.model_validate(data)
    data = order_data()
    data["requested_window"] = {"start": "2026-12-09T17:00:00+01:00", "end": "2026-12-08T08:00:00+01:00"}
    assert any("before it starts" in msg for _, msg in errors_of(data))
    data = order_data()
    data["customer"]["company_name"] = None
    assert any("COMPANY customer needs company_name" in msg for _, msg in errors_of(data))


def test_unknown_fields_are_rejected() -> None:
    data = order_data()
    data["customer"]["nickname"] = "x"
    assert ("customer.nickname", "Extra inputs are not permitted") in errors_of(data)


class TestFingerprint:
    def test_is_a_signed_64_bit_integer_and_stable(self) -> None:
        order = ServiceOrder.model_validate(order_data())
        value = order.fingerprint()
        assert -(2**63) <= value < 2**63
        assert value == ServiceOrder.model_validate(order_data()).fingerprint()

    def test_ignores_layout_offsets_line_order_spelling_and_composition(self) -> None:
        base = ServiceOrder.model_validate(order_data())
        data = order_data()
        data["lines"].reverse()
        data["ordered_at"] = "2026-11-19T14:18:00+00:00"  # same instant as 15:18+01:00
        data["lines"][0]["quantity"] = "1.000"
        data["lines"][0]["unit_price"]["amount"] = "0"
        data["service_address"]["region"] = "Rho\u0302ne"  # decomposed ô
        data["system_metadata"] = dict(reversed(list(data["system_metadata"].items())))
        shuffled = json.loads(json.dumps(data, sort_keys=True))
        assert order_fingerprint(ServiceOrder.model_validate(shuffled)) == base.fingerprint()

    def test_ignores_message_metadata_but_not_content(self) -> None:
        base = ServiceOrder.model_validate(order_data())
        data = order_data()
        data["source_version"] = 99
        data["source_updated_at"] = "2027-01-01T00:00:00+00:00"
        assert ServiceOrder.model_validate(data).fingerprint() == base.fingerprint()
        for change in (
            ("notes", "changed"),
            ("status", "CANCELLED"),
            ("store_code", None),
        ):
            data = order_data()
            data[change[0]] = change[1]
            assert ServiceOrder.model_validate(data).fingerprint() != base.fingerprint(), change
        data = order_data()
        data["lines"][0]["unit_price"]["amount"] = "2490.01"
        assert ServiceOrder.model_validate(data).fingerprint() != base.fingerprint()


def test_fingerprint_values_are_pinned() -> None:
    """Stored orders keep their fingerprints: an implementation change must not change a value.

    A deliberate change of the normalisation needs a data migration that recomputes the stored
    fingerprints; otherwise every stored order would look changed at its next event.
    """
    from adapters.registry import AdapterRegistry
    from saleshub.mapping.catalog import MappingCatalog

    root = Path(__file__).resolve().parents[2]
    adapter = AdapterRegistry.default().create("pyxis", MappingCatalog.load(root / "mappings"))
    body = (root / "contracts/samples/pyxis/01_es_in_store_created.json").read_bytes()
    assert adapter.translate(body).mapped.order.fingerprint() == 3824637058999206950
