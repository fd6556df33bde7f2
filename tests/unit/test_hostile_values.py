"""Hostile values found by fuzzing signed webhooks: each is a clean field or decode error, and cheap.

One reproducer per class: integers beyond ``bigint``, dates outside the business range (and the
order they once poisoned), NUL and lone surrogates, exponents that made a conversion take half a
minute, values whose error message could not be formatted, and collections of absurd size.
"""

from __future__ import annotations

import contextlib
import gc
import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from adapters.base import SourceAdapter
from canonical.avro import order_from_avro, order_to_avro
from canonical.limits import BIGINT_MAX, EARLIEST_DATE, LATEST_DATE
from canonical.model import Money, ServiceOrder
from saleshub.errors import DataError, DecodeError, FieldError, MappingError, shown
from saleshub.mapping import coercions as co
from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.engine import MAX_FIELD_ERRORS
from saleshub.mapping.expressions import compile_expression

SAMPLES = Path(__file__).resolve().parents[2] / "contracts" / "samples"
PYXIS_SAMPLE = SAMPLES / "pyxis" / "01_es_in_store_created.json"
EXPECTED = SAMPLES / "pyxis" / "01_es_in_store_created.expected.json"


def pyxis(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(PYXIS_SAMPLE.read_text(encoding="utf-8"))
    change(document["order"])
    return document


def body_of(document: Any) -> bytes:
    return json.dumps(document, default=str).encode("utf-8")


def mapping_errors(catalog: MappingCatalog, document: Any) -> dict[str, FieldError]:
    with pytest.raises(MappingError) as info:
        catalog.get("pyxis").apply(document)
    return {error.target: error for error in info.value.errors}


def cpu_ms(call: Callable[[], object]) -> float:
    started = time.thread_time()
    with contextlib.suppress(DataError):
        call()
    return (time.thread_time() - started) * 1000


# -- 1. integers beyond PostgreSQL's bigint ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "target", "source"),
    [
        ("revision", "source_version", "order.revision"),
        ("lineNo", "lines[0].line_number", "order.items[0].lineNo"),
        ("unitPriceCents", "lines[0].unit_price", "order.items[0].unitPriceCents"),
    ],
)
@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**40], ids=["2^63", "-2^63-1", "10^40"])
def test_integers_beyond_bigint_are_field_errors(
    catalog: MappingCatalog, field: str, target: str, source: str, value: int
) -> None:
    def change(order: dict[str, Any]) -> None:
        (order if field == "revision" else order["items"][0])[field] = value

    error = mapping_errors(catalog, pyxis(change))[target]
    assert error.source == source
    assert error.value == value
    assert "out of range" in error.rule and str(BIGINT_MAX) in error.rule


def test_the_largest_bigint_is_accepted_as_source_version(catalog: MappingCatalog) -> None:
    order = catalog.get("pyxis").apply(pyxis(lambda o: o.update(revision=BIGINT_MAX))).order
    assert order.source_version == BIGINT_MAX


def test_the_model_refuses_a_source_version_beyond_bigint() -> None:
    data = json.loads(EXPECTED.read_text(encoding="utf-8"))["order"]
    with pytest.raises(ValidationError, match="less than or equal to 9223372036854775807"):
        ServiceOrder.model_validate({**data, "source_version": 2**63})


@pytest.mark.parametrize("revision", [2**63, 10**99], ids=["2^63", "10^99"])
def test_a_revision_beyond_bigint_cannot_classify_the_event(
    adapters: dict[str, SourceAdapter], revision: int
) -> None:
    with pytest.raises(
        DataError, match=r"order\.revision must be a whole number from 0 to 9223372036854775807"
    ):
        adapters["pyxis"].translate(body_of(pyxis(lambda o: o.update(revision=revision))))


@pytest.mark.parametrize("text", ["9223372036854775808", "²", "+-5", "٣"])
def test_whole_numbers_in_text_are_ascii_digits_within_bigint(text: str) -> None:
    with pytest.raises(co.CoercionError):
        co.to_int(text)


# -- 2./3. dates outside the business range; the poisoned order --------------------------------------

OUT_OF_RANGE_TIMES = [
    "0001-01-01T00:00:00+05:00",  # no UTC form in Python
    "9999-12-31T23:00:00-05:00",  # stored by PostgreSQL as year 10000, unreadable afterwards
    "1899-12-31T23:59:59+00:00",
    "2201-01-01T00:00:00+00:00",
    "1900-01-01T00:00:00+14:00",  # 1899-12-31T10:00Z: read back from Avro or PostgreSQL in UTC
    "2200-12-31T23:00:00-05:00",
]


@pytest.mark.parametrize("text", OUT_OF_RANGE_TIMES)
@pytest.mark.parametrize(
    ("key", "target"),
    [
        ("createdAt", "ordered_at"),
        ("updatedAt", "source_updated_at"),
        ("requestedSlot", "requested_window.start"),
    ],
)
def test_times_outside_the_business_range_are_field_errors(
    catalog: MappingCatalog, text: str, key: str, target: str
) -> None:
    def change(order: dict[str, Any]) -> None:
        if key == "requestedSlot":
            order["requestedSlot"]["from"] = text
        else:
            order[key] = text

    error = mapping_errors(catalog, pyxis(change))[target]
    assert error.value == text
    assert error.rule == (
        f"is out of range: times must lie between {EARLIEST_DATE}T00:00:00Z and {LATEST_DATE}T23:59:59.999999Z"
    )


@pytest.mark.parametrize(
    "text",
    [
        "1900-01-01T00:00:00Z",
        "1900-01-01T00:00:00-12:00",
        "2200-12-31T23:59:59.999999Z",
        "2201-01-01T05:00:00+14:00",
    ],
)
def test_the_edges_of_the_business_range_store_publish_and_fingerprint(
    catalog: MappingCatalog, text: str
) -> None:
    order = catalog.get("pyxis").apply(pyxis(lambda o: o.update(createdAt=text, updatedAt=text))).order
    order.model_dump_json()
    assert order_from_avro(order_to_avro(order)) == order
    assert -(2**63) <= order.fingerprint() < 2**63


@pytest.mark.parametrize("text", OUT_OF_RANGE_TIMES)
def test_an_out_of_range_source_updated_at_never_yields_an_order(catalog: MappingCatalog, text: str) -> None:
    """The poisoned order: same content, impossible source_updated_at, once stored as a duplicate."""
    data = json.loads(EXPECTED.read_text(encoding="utf-8"))["order"]
    with pytest.raises(ValidationError) as info:
        ServiceOrder.model_validate({**data, "source_updated_at": text})
    assert [error["loc"] for error in info.value.errors()] == [("source_updated_at",)]
    error = mapping_errors(catalog, pyxis(lambda o: o.update(updatedAt=text)))["source_updated_at"]
    assert error.source == "order.updatedAt"


def test_naive_times_read_in_the_mapping_zone_are_bounded_too(adapters: dict[str, SourceAdapter]) -> None:
    body = (SAMPLES / "tempo" / "01_pl_in_store_installation.xml").read_bytes()
    start = body.index(b"<tso:OrderDate>") + len(b"<tso:OrderDate>")
    end = body.index(b"</tso:OrderDate>")
    with pytest.raises(MappingError) as info:
        adapters["tempo"].translate(body[:start] + b"9999-12-31T23:59:59" + body[end:])
    assert "out of range" in {e.target: e for e in info.value.errors}["ordered_at"].rule


# -- 4. NUL and lone surrogates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("escape", "path", "reason"),
    [
        ("\\u0000", "order.notes", "NUL"),
        ("\\ud800", "order.notes", "lone surrogate"),
        ("\\udfff", "order.notes", "lone surrogate"),
    ],
)
def test_unstorable_text_is_refused_by_the_decoder_with_its_path(
    adapters: dict[str, SourceAdapter], escape: str, path: str, reason: str
) -> None:
    body = body_of(pyxis(lambda o: o.update(notes="before MARK after"))).replace(b"MARK", escape.encode())
    with pytest.raises(DecodeError, match=reason) as info:
        adapters["pyxis"].translate(body)
    assert info.value.position == f"JSON path {path}"
    assert "\x00" not in str(info.value)
    str(info.value).encode("utf-8")


def test_unstorable_keys_and_list_items_are_found_too(adapters: dict[str, SourceAdapter]) -> None:
    body = body_of(pyxis(lambda o: o["items"][1].update(label="MARK")))
    with pytest.raises(DecodeError) as info:
        adapters["erp"].decode(body.replace(b"MARK", b"\\u0000"))
    assert info.value.position == "JSON path order.items[1].label"
    with pytest.raises(DecodeError) as info:
        adapters["pyxis"].decode(b'{"a": [{"k\\u0000": 1}]}')
    assert info.value.position == "JSON path a[0].k\\x00 (its name)"


@pytest.mark.parametrize("text", ["\\ud83d\\ude00", "\\\\u0000", "\\u0001"])
def test_surrogate_pairs_escaped_backslashes_and_other_controls_are_kept(
    adapters: dict[str, SourceAdapter], text: str
) -> None:
    body = body_of(pyxis(lambda o: o.update(notes="MARK"))).replace(b'"MARK"', f'"{text}"'.encode())
    order = adapters["pyxis"].translate(body).mapped.order
    assert order.notes == json.loads(f'"{text}"')
    order.model_dump_json().encode("utf-8")


def test_error_records_are_utf8_json_without_nul() -> None:
    error = FieldError("notes", "order.notes\x00", "bad \ud800 rule", "a\x00b\udc00")
    encoded = json.dumps(error.as_dict(), ensure_ascii=False).encode("utf-8")
    assert b"\x00" not in encoded and b"\\u0000" not in encoded
    str(error).encode("utf-8")


# -- 5. algorithmic slowness -------------------------------------------------------------------------

HUGE = ["1e999999", "-1e999999", "1e999999999", "1e-999999999", "0e999999999", "NaN", "-0"]


@pytest.mark.parametrize("text", HUGE)
def test_every_numeric_coercion_is_cheap_whatever_the_exponent(text: str) -> None:
    value = Decimal(text)
    calls: list[Callable[[], object]] = [
        lambda: co.to_int(value),
        lambda: co.to_decimal(value),
        lambda: co.to_decimal(value, scale=2),
        lambda: co.to_minor_money(value, "EUR"),
        lambda: co.to_text(value),
        lambda: Money(amount=value, currency="EUR"),
        lambda: compile_expression("round(a * 2, 2)", frozenset("a")).evaluate({"a": value}),
    ]
    for call in calls:
        started = time.thread_time()
        with contextlib.suppress(ValueError, ArithmeticError):
            call()
        assert time.thread_time() - started < 0.01


def test_a_worst_case_body_maps_to_errors_in_well_under_100_ms(adapters: dict[str, SourceAdapter]) -> None:
    def change(order: dict[str, Any]) -> None:
        order.update(revision=BIGINT_MAX, createdAt="0001-01-01T00:00:00+05:00", notes="x" * 200_000)
        order["updatedAt"] = "9999-12-31T23:00:00-05:00"
        order["customer"]["phone"] = "6" * 100_000
        order["totals"] = {"netCents": "HUGE", "taxCents": "HUGE", "grossCents": "HUGE"}
        order["items"] = [
            {"lineNo": "HUGE", "sku": "PX-100234", "qty": "HUGE", "unitPriceCents": "HUGE"}
        ] * 2_000

    body = body_of(pyxis(change)).replace(b'"HUGE"', b"1e999999")
    gc.collect()  # the best of three, after a collection: the body's own cost, not a neighbour's garbage
    assert min(cpu_ms(lambda: adapters["pyxis"].translate(body)) for _ in range(3)) < 100
    with pytest.raises(MappingError) as info:
        adapters["pyxis"].translate(body)
    assert len(info.value.errors) == MAX_FIELD_ERRORS + 1
    assert info.value.errors[-1].rule.endswith("more field errors are not listed")
    errors = {e.target: e for e in info.value.errors}
    assert errors["lines"].rule == "has 2000 elements; at most 500 are accepted"


def test_an_overlong_phone_number_is_refused_before_the_cache() -> None:
    before = co._e164.cache_info().currsize
    with pytest.raises(co.CoercionError, match="longer than 64"):
        co.to_phone("6" * 1_000_000, "ES")
    assert co._e164.cache_info().currsize == before


# -- 6. an error while reporting an error ------------------------------------------------------------


def test_a_line_number_of_ten_to_the_5000_is_a_field_error(adapters: dict[str, SourceAdapter]) -> None:
    document = pyxis(lambda o: o["items"][0].update(lineNo="HUGE"))
    with pytest.raises(MappingError) as info:
        adapters["pyxis"].translate(body_of(document).replace(b'"HUGE"', b"1e5000"))
    error = {e.target: e for e in info.value.errors}["lines[0].line_number"]
    assert error.source == "order.items[0].lineNo" and "out of range" in error.rule
    str(info.value)


class _Unshowable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10**5000, "(an integer of about 5001 digits)"),
        (-(10**5000), "(a negative integer of about 5001 digits)"),
        (Decimal("1e999999999"), "Decimal('1E+999999999')"),
        ([10**4000] * 3, "(a list of 3 items)"),
        (_Unshowable(), "(a value of type _Unshowable that cannot be shown)"),
        ("x" * 1_000_000, "'" + "x" * 78 + "…"),
    ],
    ids=["10^5000", "-10^5000", "1e999999999", "list", "failing-repr", "megabyte-text"],
)
def test_formatting_a_value_never_raises_and_is_bounded(value: object, expected: str) -> None:
    started = time.thread_time()
    assert shown(value) == expected
    assert time.thread_time() - started < 0.01
    error = FieldError("lines[0].line_number", "order.items[0].lineNo", "is out of range", value)
    assert len(str(error)) < 200
    assert (
        FieldError("customer.phone", "x", "y", value, personal=True)
        .shown_value()
        .startswith("(personal data")
    )
