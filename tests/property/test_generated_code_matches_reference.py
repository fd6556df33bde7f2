"""The generated mapping code against the interpreter of the nodes (saleshub/mapping/tracing.py).

Hypothesis writes small mapping specifications (value nodes with paths, constants, expressions,
transforms, crosswalk lookups under each missing-code policy, defaults, required, conditions and
first_of, set into the Pyxis mapping's free ``system_metadata`` map) and documents (the golden Pyxis
order with keys dropped, values retyped, and a random ``probe`` subtree the specs read); the function
generated from the compiled nodes must give exactly the interpreter's output and errors. Every
golden sample, JSON and XML, is checked the same way.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.registry import AdapterRegistry
from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.tracing import interpret, trace

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "contracts/samples/pyxis/01_es_in_store_created.json").read_bytes())
ANCHOR = "      web_session: {path: order.attributes.webSession}"

keys = st.sampled_from(["a", "b", "c"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from(["", " ", "x", " y ", "STORE", "WEB", "7"])
)
probes = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=10,
)
paths = st.lists(keys, min_size=1, max_size=3).map(lambda parts: "probe." + ".".join(parts)) | st.builds(
    lambda k, i: f"probe.{k}[{i}]", keys, st.integers(-2, 2)
)
transforms = st.lists(
    st.sampled_from(["trim", "upper", "lower", "collapse_spaces", "strip_leading_zeros"]), max_size=2
)
lookups = st.none() | st.fixed_dictionaries(
    {"table": st.just("channels"), "column": st.just("pyxis")},
    optional={
        "on_missing": st.sampled_from(["error", "default", "pass_through"]),
    },
)
conditions = st.none() | st.builds(
    lambda path, test: {"path": path, **test},
    paths,
    st.sampled_from(
        [{"exists": True}, {"exists": False}, {"equals": "x"}, {"not_equals": 1}, {"in": ["x", "7"]}]
    ),
)


def _value_node(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["path", "path", "path", "const", "expr"]))
    node: dict[str, Any]
    if kind == "path":
        node = {"path": draw(paths)}
    elif kind == "const":
        node = {"const": draw(st.sampled_from(["x", " ", "WEB", "Z"]))}
    else:
        node = {"expr": "concat(p, '-', q)", "with": {"p": {"path": draw(paths)}, "q": {"path": draw(paths)}}}
    found = draw(transforms)
    if found:
        node["transform"] = found
    lookup = draw(lookups)
    if lookup is not None:
        if lookup.get("on_missing") == "default":
            lookup["default"] = draw(st.sampled_from(["IN_STORE", "?"]))
        node["lookup"] = lookup
    if draw(st.booleans()):
        node["default"] = draw(st.sampled_from(["d", "WEB"]))
    if draw(st.booleans()):
        node["required"] = True
    when = draw(conditions)
    if when is not None:
        node["when"] = when
    return node


@st.composite
def specs(draw: Any) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 4)) == 0:
            first_of: dict[str, Any] = {"first_of": [_value_node(draw), _value_node(draw)]}
            if draw(st.booleans()):
                first_of["default"] = "f"
            if draw(st.booleans()):
                first_of["required"] = True
            nodes.append(first_of)
        else:
            nodes.append(_value_node(draw))
    return nodes


@st.composite
def documents(draw: Any) -> dict[str, Any]:
    document = copy.deepcopy(SAMPLE)
    order = document["order"]
    for key in draw(st.lists(st.sampled_from(sorted(order)), max_size=3, unique=True)):
        order[key] = draw(st.sampled_from([None, "", " x ", 12, [], {}, "WEB"]))
    if draw(st.booleans()) and order.get("items"):
        item = order["items"][0] if isinstance(order["items"], list) else None
        if isinstance(item, dict):
            item[draw(st.sampled_from(sorted(item)))] = draw(st.sampled_from([None, "1,5", "abc", -1, "0"]))
    document["probe"] = draw(probes)
    return document


_CATALOGS: dict[str, MappingCatalog] = {}


def _catalog(tmp_path_factory: Any, nodes: list[dict[str, Any]]) -> MappingCatalog | None:
    text = "".join(f"\n      probe{n}: {json.dumps(node)}" for n, node in enumerate(nodes))
    if text not in _CATALOGS:
        directory = tmp_path_factory.mktemp("mappings")
        shutil.copytree(ROOT / "mappings", directory, dirs_exist_ok=True)
        pyxis = directory / "pyxis/order.yaml"
        pyxis.write_text(pyxis.read_text(encoding="utf-8").replace(ANCHOR, ANCHOR + text), encoding="utf-8")
        catalog, issues = MappingCatalog.check(directory)
        _CATALOGS[text] = catalog if not issues else None  # type: ignore[assignment]
    return _CATALOGS[text]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes=specs(), document=documents())
def test_generated_code_gives_exactly_what_the_reference_interpreter_gives(
    tmp_path_factory: Any, nodes: list[dict[str, Any]], document: dict[str, Any]
) -> None:
    catalog = _catalog(tmp_path_factory, nodes)
    if catalog is None:  # a spec the compiler refuses (e.g. a default that is not a channel) maps nothing
        return
    mapping = catalog.get("pyxis")
    assert mapping.produce(document) == interpret(mapping.root, document)


@pytest.mark.parametrize(
    "payload",
    sorted(
        p
        for p in (ROOT / "contracts/samples").glob("*/*")
        if p.suffix in (".json", ".xml") and ".expected" not in p.name
    ),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_every_golden_sample_maps_the_same_in_both(catalog: MappingCatalog, payload: Path) -> None:
    adapter = AdapterRegistry.default().create(payload.parent.name, catalog)
    document = adapter.decode(payload.read_bytes())
    mapping = catalog.get(payload.parent.name, adapter.mapping_name(document, adapter.classify(document)))
    assert mapping.produce(document) == interpret(mapping.root, document)


@pytest.mark.parametrize(
    "payload",
    sorted(
        p
        for p in (ROOT / "contracts/samples").glob("*/*")
        if p.suffix in (".json", ".xml") and ".expected" not in p.name
    ),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_tracing_maps_exactly_as_interpreting(catalog: MappingCatalog, payload: Path) -> None:
    adapter = AdapterRegistry.default().create(payload.parent.name, catalog)
    document = adapter.decode(payload.read_bytes())
    mapping = catalog.get(payload.parent.name, adapter.mapping_name(document, adapter.classify(document)))
    data, errors, traces = trace(mapping.root, document)
    assert (data, errors) == interpret(mapping.root, document)
    assert sum(len(t.errors) for t in traces) == len(errors)  # every error belongs to one field


def test_a_group_longer_than_its_canonical_field_maps_the_same_in_both(catalog: MappingCatalog) -> None:
    document = copy.deepcopy(SAMPLE)
    item = document["order"]["items"][0]
    document["order"]["items"] = [{**item, "lineNo": n} for n in range(1, 504)]  # lines hold at most 500
    mapping = catalog.get("pyxis")
    data, errors = interpret(mapping.root, document)
    assert (data, errors) == mapping.produce(document)
    assert len(data["lines"]) == 500 and errors[0].rule == "has 503 elements; at most 500 are accepted"
