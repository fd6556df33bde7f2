"""Property tests: whatever the body, an adapter yields a canonical order or a structured DataError.

Two strategies per format: wholly arbitrary documents (hit the decoders and classifiers), and golden
samples with arbitrary values spliced into random places (reach deep into the mapping engine).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.base import SourceAdapter
from saleshub.errors import DecodeError
from tests.property.outcomes import check_outcome

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "contracts" / "samples"
PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str).map(Decimal)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)


def contains_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(contains_float(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_float(v) for v in value)
    return False


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=str).encode("utf-8")


@PROFILE
@given(document=json_values)
def test_arbitrary_json_into_pyxis_and_erp(adapters: dict[str, SourceAdapter], document: Any) -> None:
    for name in ("pyxis", "erp"):
        check_outcome(adapters[name], dumps(document))


@PROFILE
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_into_every_adapter(adapters: dict[str, SourceAdapter], raw: bytes) -> None:
    for adapter in adapters.values():
        check_outcome(adapter, raw)


def golden_json(system: str) -> list[Any]:
    return [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((SAMPLES / system).glob("*.json"))
        if not p.name.endswith(".expected.json")
    ]


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths_of(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths_of(child, (*prefix, index))
    return found


def splice(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = json.loads(json.dumps(document, default=str))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


@st.composite
def mutated_json(draw: st.DrawFn, system: str) -> bytes:
    document = draw(st.sampled_from(golden_json(system)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(paths_of(document)))
        document = splice(document, path, draw(json_values))
    return dumps(document)


@PROFILE
@given(body=mutated_json("pyxis"))
def test_mutated_pyxis_samples(adapters: dict[str, SourceAdapter], body: bytes) -> None:
    check_outcome(adapters["pyxis"], body)
    try:
        document = adapters["pyxis"].decode(body)
    except DecodeError:  # e.g. text with NUL: refused before any mapping
        document = None
    if isinstance(document, dict):
        data, _ = adapters["pyxis"].catalog.get("pyxis").produce(document)
        assert not contains_float(data), "money and quantities must never become floats"


@PROFILE
@given(body=mutated_json("erp"))
def test_mutated_erp_samples(adapters: dict[str, SourceAdapter], body: bytes) -> None:
    check_outcome(adapters["erp"], body)


xml_names = st.sampled_from(
    ["Order", "OrderNumber", "Channel", "Market", "Line", "Quantity", "UnitPrice", "x"]
)
xml_texts = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=20)


@st.composite
def xml_trees(draw: st.DrawFn, depth: int = 0) -> etree._Element:
    namespace = draw(st.sampled_from(["urn:tempo:serviceorder:2", "urn:other"]))
    element = etree.Element(f"{{{namespace}}}{draw(xml_names)}")
    if draw(st.booleans()):
        element.set(draw(st.sampled_from(["no", "currency", "type", "id"])), draw(xml_texts))
    if depth < 3:
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            element.append(draw(xml_trees(depth + 1)))
    if not len(element):
        element.text = draw(xml_texts)
    return element


@PROFILE
@given(tree=xml_trees(), action=st.sampled_from(["NEW", "CHANGE", "CANCEL", "BOGUS"]))
def test_arbitrary_xml_into_tempo(
    adapters: dict[str, SourceAdapter], tree: etree._Element, action: str
) -> None:
    root = etree.Element(
        "{urn:tempo:serviceorder:2}ServiceOrderMessage", messageId="m-1", action=action, sequence="1"
    )
    root.append(tree)
    check_outcome(adapters["tempo"], etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def golden_xml() -> list[bytes]:
    return [p.read_bytes() for p in sorted((SAMPLES / "tempo").glob("*.xml"))]


@PROFILE
@given(data=st.data())
def test_mutated_tempo_samples(adapters: dict[str, SourceAdapter], data: st.DataObject) -> None:
    root = etree.fromstring(data.draw(st.sampled_from(golden_xml())))
    elements = list(root.iter())
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        element = data.draw(st.sampled_from(elements))
        choice = data.draw(st.sampled_from(["text", "remove", "attr"]))
        if choice == "text" and not len(element):
            element.text = data.draw(xml_texts)
        elif choice == "remove" and element.getparent() is not None:
            element.getparent().remove(element)
            elements = list(root.iter())
        elif choice == "attr":
            element.set(
                data.draw(st.sampled_from(["no", "currency", "type", "action", "sequence"])),
                data.draw(xml_texts),
            )
    check_outcome(adapters["tempo"], etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
