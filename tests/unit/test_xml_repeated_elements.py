"""Tempo XML: an element the schema allows once, sent twice, is refused naming it (like a duplicate JSON key)."""

from __future__ import annotations

import pytest
import xmlschema

from adapters.base import SourceAdapter
from adapters.registry import AdapterRegistry
from adapters.tempo import TEMPO_NAMESPACE
from adapters.tempo.schema import SINGLE_CHILDREN
from saleshub.errors import DecodeError
from saleshub.mapping.catalog import MappingCatalog
from tests.conftest import MAPPINGS, ROOT

SAMPLE = ROOT / "contracts/samples/tempo/04_pl_mobile_assembly_minimal.xml"
XSD = ROOT / "contracts/xsd/tempo-serviceorder-2.xsd"


def _adapter() -> SourceAdapter:
    return AdapterRegistry.default().create("tempo", MappingCatalog.load(MAPPINGS))


@pytest.mark.parametrize(
    ("original", "repeated", "named"),
    [
        (
            b"<tso:OrderNumber>PL/2026/004702</tso:OrderNumber>",
            b"<tso:OrderNumber>PL/2026/999999</tso:OrderNumber>",
            "OrderNumber",
        ),
        (b"<tso:Market>PL</tso:Market>", b"<tso:Market>DE</tso:Market>", "Market"),
        (b"<tso:City>\xc5\x81\xc3\xb3d\xc5\xba</tso:City>", b"<tso:City>Warszawa</tso:City>", "City"),
        (b"<tso:Gross>120,00</tso:Gross>", b"<tso:Gross>1,00</tso:Gross>", "Gross"),
    ],
)
def test_an_element_the_schema_allows_once_is_refused_when_repeated(
    original: bytes, repeated: bytes, named: str
) -> None:
    body = SAMPLE.read_bytes()
    assert original in body
    twice = body.replace(original, original + repeated)
    with pytest.raises(DecodeError, match=rf"\b{named}\b appears 2 times") as caught:
        _adapter().translate(twice)
    assert "line" in (caught.value.position or "")
    _adapter().translate(body)  # the sample as it is still maps


def test_repeatable_elements_stay_accepted() -> None:
    body = SAMPLE.read_bytes()
    line = body[body.index(b'<tso:Line no="1">') : body.index(b"</tso:Line>") + len(b"</tso:Line>")]
    two_lines = body.replace(line, line + line.replace(b'no="1"', b'no="2"'))
    translation = _adapter().translate(two_lines)
    assert len(translation.mapped.order.lines) == 2


def _single_children_in_schema() -> dict[str, frozenset[str]]:
    schema = xmlschema.XMLSchema(XSD)
    found: dict[str, set[str]] = {}
    for element in schema.elements.values():
        for component in element.iter():
            content = getattr(component.type, "content", None)
            if content is None or not hasattr(content, "iter_elements"):
                continue
            once = {child.local_name for child in content.iter_elements() if child.max_occurs == 1}
            if once:
                found.setdefault(component.local_name, set()).update(once)
    return {name: frozenset(children) for name, children in found.items()}


def test_the_single_element_list_is_the_schemas() -> None:
    assert {name: frozenset(c) for name, c in SINGLE_CHILDREN.items()} == _single_children_in_schema()
    assert xmlschema.XMLSchema(XSD).target_namespace == TEMPO_NAMESPACE
