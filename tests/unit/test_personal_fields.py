"""Splitting an order's personal fields from its facts and merging them back: lossless, never in place."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from adapters.registry import AdapterRegistry
from canonical.model import PERSONAL_DATA_FIELDS
from saleshub.mapping.catalog import MappingCatalog
from saleshub.store.personal import merge_personal, split_personal
from tests.support.synthetic import pyxis_event

ROOT = Path(__file__).resolve().parents[2]


def _order_json() -> dict[str, Any]:
    adapter = AdapterRegistry.default().create("pyxis", MappingCatalog.load(ROOT / "mappings"))
    loaded: dict[str, Any] = json.loads(adapter.translate(pyxis_event(7)).mapped.order.model_dump_json())
    return loaded


def _get(content: dict[str, Any], dotted: str) -> object:
    value: Any = content
    for part in dotted.split("."):
        value = value.get(part, "<absent>") if isinstance(value, dict) else "<absent>"
    return value


def test_split_takes_every_personal_field_out_and_merge_puts_each_back() -> None:
    content = _order_json()
    content["customer"]["company_name"] = None  # a null is personal too, and comes back as null
    facts, personal = split_personal(content)

    named = {f"system_metadata.{key}" for key in content.get("system_metadata", {}) if "loyalty" in key}
    assert (
        set(personal) == {path for path in PERSONAL_DATA_FIELDS if _get(content, path) != "<absent>"} | named
    )
    assert personal["customer.email"] == content["customer"]["email"]
    assert personal["customer.company_name"] is None
    assert all(_get(facts, path) == "<absent>" for path in PERSONAL_DATA_FIELDS)
    assert facts["totals"] == content["totals"] and facts["lines"] == content["lines"]
    assert merge_personal(facts, personal) == content


def test_split_and_merge_leave_their_arguments_unchanged() -> None:
    content = _order_json()
    before = copy.deepcopy(content)
    facts, personal = split_personal(content)
    assert content == before

    facts_before, personal_before = copy.deepcopy(facts), copy.deepcopy(personal)
    merged = merge_personal(facts, personal)
    assert facts == facts_before and personal == personal_before

    merged["customer"]["email"] = "changed@example.com"
    merged["service_address"]["line1"] = "changed"
    assert content == before and facts == facts_before


def test_merge_makes_the_parents_a_personal_field_needs() -> None:
    assert merge_personal({"status": "NEW"}, {"customer.email": "a@example.com"}) == {
        "status": "NEW",
        "customer": {"email": "a@example.com"},
    }
