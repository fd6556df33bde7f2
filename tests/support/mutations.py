"""Structure-aware hostile mutations of the golden samples (hypothesis strategies), for any test.

Each example takes a golden sample of ``contracts/samples/{pyxis,erp,tempo}`` and applies a few
mutations where the mapping reads: delete or retype a field, put in a huge or tiny number (``2**63``,
``1e999999``, ``1e-999999999``, ``-0``, ``"NaN"``), a date at or past the edges of the business range,
text with control characters, NUL or lone surrogates, deep nesting, a long text or list, a duplicate
key. ``check_outcome`` then asserts what the hub promises for any body (see ``tests.property.outcomes``):
only DataErrors, bounded CPU, and orders and error records that can be stored and published.
"""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from lxml import etree

SAMPLES = Path(__file__).resolve().parents[2] / "contracts" / "samples"

EDGE_TIMES = [
    "0001-01-01T00:00:00+05:00",
    "0001-01-01T00:00:00",
    "9999-12-31T23:00:00-05:00",
    "9999-12-31T23:59:59.999999",
    "1899-12-31T23:59:59Z",
    "1900-01-01T00:00:00+14:00",
    "2200-12-31T23:59:59-12:00",
    "2201-01-01T00:00:00+00:00",
    "2026-02-30T10:00:00+01:00",
    "2026-11-20T09:15:00+23:59",
]
NUMBER_LITERALS = [
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "1" + "0" * 99,
    "1e999999",
    "-1e999999",
    "1e5000",
    "1e999999999",
    "1e-999999999",
    "1E+400",
    "0e999999999",
    "-0",
    "-0.0",
    "0." + "0" * 90 + "1",
    "123456789012345678901234567890.5",
]
NUMBER_TEXTS = [*NUMBER_LITERALS, "NaN", "-Infinity", "sNaN", "1,5", "1 000,25", "²", "٣", "+-1", " 12 "]
HOSTILE_TEXTS = [
    "a\x00b",
    "\x00",
    "\ud800",
    "x\udfff",
    "\x01\x1f\x7f",
    "\u200b\ufeff",
    "\U0001f600",
    "",
    " ",
    "x" * 5_000,
    "6" * 100_000,
]

json_numbers = st.one_of(
    st.sampled_from(NUMBER_LITERALS).map(Decimal),
    st.sampled_from(NUMBER_LITERALS).map(Decimal),
    st.integers(min_value=-(10**40), max_value=10**40),
)
hostile_leaf = (
    json_numbers
    | st.sampled_from(NUMBER_TEXTS)
    | st.sampled_from(EDGE_TIMES)
    | st.sampled_from(HOSTILE_TEXTS)
    | st.text(max_size=12)
    | st.none()
    | st.booleans()
)


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


hostile_value = (
    hostile_leaf
    | st.integers(min_value=1, max_value=1200).map(nested)
    | st.lists(hostile_leaf, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "lineNo", "\x00"]), hostile_leaf, max_size=2)
)


DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}")
NUMBER_LIKE = re.compile(r"^\s*[+-]?[\d.,\s]+$")


def hostile_for(draw: st.DrawFn, original: Any) -> Any:
    """A hostile replacement, usually of the same kind as ``original`` (where the mapping looks)."""
    if draw(st.integers(min_value=0, max_value=3)) == 0 or isinstance(original, bool):
        return draw(hostile_value)
    if isinstance(original, int | Decimal):
        return draw(json_numbers if draw(st.integers(0, 3)) else st.sampled_from(NUMBER_TEXTS))
    if isinstance(original, str) and DATE_LIKE.match(original):
        return draw(st.sampled_from(EDGE_TIMES))
    if isinstance(original, str) and NUMBER_LIKE.match(original):
        return draw(st.sampled_from(NUMBER_TEXTS))
    if isinstance(original, str):
        return draw(st.sampled_from(HOSTILE_TEXTS))
    return draw(hostile_value)


def golden_json(system: str) -> list[Any]:
    return [
        json.loads(p.read_text(encoding="utf-8"), parse_float=Decimal)
        for p in sorted((SAMPLES / system).glob("*.json"))
        if not p.name.endswith(".expected.json")
    ]


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths_of(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths_of(child, (*prefix, index))
    return found


def parent_of(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        document = document[key]
    return document


def encode(document: Any) -> bytes:
    """JSON with Decimals written as the exact number literals they stand for (``1E+999999``)."""
    literals: dict[str, str] = {}

    def placeholder(value: object) -> str:
        if isinstance(value, Decimal):
            key = f"@@number{len(literals)}@@"
            literals[f'"{key}"'] = str(value)
            return key
        raise TypeError(type(value).__name__)

    text = json.dumps(document, default=placeholder)  # NUL and lone surrogates become \u escapes
    for key, literal in literals.items():
        text = text.replace(key, literal)
    return text.encode("utf-8")


@st.composite
def mutated_json(draw: st.DrawFn, system: str) -> bytes:
    document = copy.deepcopy(draw(st.sampled_from(golden_json(system))))
    duplicate: str | None = None
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = paths_of(document)
        leaves = [path for path in paths if not isinstance(parent_of(document, path)[path[-1]], dict | list)]
        if not paths:
            break
        path = draw(st.sampled_from(leaves if leaves and draw(st.integers(0, 4)) else paths))
        parent = parent_of(document, path)
        original = parent[path[-1]]
        action = draw(st.sampled_from(["replace"] * 6 + ["delete", "grow", "duplicate"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "grow" and isinstance(original, list) and original:
            parent[path[-1]] = original * draw(st.integers(min_value=2, max_value=800))
        elif action == "duplicate" and isinstance(path[-1], str):
            duplicate = path[-1]
        else:
            parent[path[-1]] = hostile_for(draw, original)
    body = encode(document)
    if duplicate is not None:
        key = json.dumps(duplicate).encode()
        body = body.replace(key + b": ", key + b": 1, " + key + b": ", 1)
    return body


XML_TEXTS = [
    *NUMBER_TEXTS,
    *EDGE_TIMES,
    "x" * 5_000,
    "6" * 100_000,
    "\U0001f600",
    "",
    "RAW:&#0;",
    "RAW:&#x0;",
    "RAW:&#xD800;",
    "RAW:&#55296;",
    "RAW:&#1;",
    "RAW:&#xFFFE;",
    "RAW:&amp;&lt;",
]


def golden_xml() -> list[bytes]:
    return [p.read_bytes() for p in sorted((SAMPLES / "tempo").glob("*.xml"))]


def xml_value(draw: st.DrawFn, original: str | None) -> str:
    if original is not None and draw(st.integers(min_value=0, max_value=3)) > 0:
        if DATE_LIKE.match(original):
            return draw(st.sampled_from(EDGE_TIMES))
        if NUMBER_LIKE.match(original):
            return draw(st.sampled_from(NUMBER_TEXTS))
    return draw(st.sampled_from(XML_TEXTS))


@st.composite
def mutated_xml(draw: st.DrawFn) -> bytes:
    root = etree.fromstring(draw(st.sampled_from(golden_xml())))
    raw: dict[str, str] = {}
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        element = draw(st.sampled_from(list(root.iter())))
        action = draw(
            st.sampled_from(["text"] * 3 + ["attribute"] * 2 + ["remove", "duplicate", "deep", "grow"])
        )
        if action == "attribute" and element.attrib and draw(st.booleans()):
            name = draw(st.sampled_from(sorted(element.attrib)))
        else:
            name = draw(st.sampled_from(["no", "currency", "type", "action", "sequence"]))
        original = element.get(name) if action == "attribute" else element.text
        value = xml_value(draw, original)
        if value.startswith("RAW:"):  # a character reference lxml would escape: spliced in as bytes
            marker = f"RAWMARK{len(raw)}"
            raw[marker] = value.removeprefix("RAW:")
            value = marker
        mutate_element(draw, element, action, name, value)
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    for marker, reference in raw.items():
        body = body.replace(marker.encode(), reference.encode())
    return body


def mutate_element(draw: st.DrawFn, element: Any, action: str, name: str, value: str) -> None:
    parent = element.getparent()
    if action == "text" and not len(element):
        element.text = value
    elif action == "attribute":
        element.set(name, value)
    elif action == "remove" and parent is not None:
        parent.remove(element)
    elif action == "duplicate" and parent is not None:
        element.addnext(copy.deepcopy(element))
    elif action == "deep":
        inner = element
        for _ in range(draw(st.integers(min_value=1, max_value=300))):
            inner = etree.SubElement(inner, element.tag)
    elif action == "grow" and parent is not None:
        for _ in range(draw(st.integers(min_value=1, max_value=600))):
            element.addnext(copy.deepcopy(element))
