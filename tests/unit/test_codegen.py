"""The generated mapping function: exact path semantics, safe with any steward text, failures reported."""

from __future__ import annotations

import linecache
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import jmespath
import jmespath.exceptions
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.registry import AdapterRegistry
from saleshub.errors import MappingError
from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.paths import ChildXmlPath, DottedJsonPath, PathError, _xml_value, compile_path
from tests.conftest import FIXTURE_MAPPINGS

ROOT = Path(__file__).resolve().parents[2]

keys = st.sampled_from(["a", "b", "c"])
documents = st.recursive(
    st.none() | st.integers(-3, 3) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=12,
)
steps = st.lists(st.tuples(keys, st.lists(st.integers(-3, 3), max_size=2)), min_size=1, max_size=4).map(
    lambda parts: ".".join(key + "".join(f"[{i}]" for i in indexes) for key, indexes in parts)
)


@settings(max_examples=400, deadline=None)
@given(document=documents, path=steps)
def test_plain_json_paths_mean_exactly_what_jmespath_means(document: Any, path: str) -> None:
    compiled = compile_path(path, "json", {})
    assert isinstance(compiled, DottedJsonPath), path
    assert compiled.scalar(document, document) == jmespath.search(path, document)


@settings(max_examples=60, deadline=None)
@given(document=documents, path=steps)
def test_generated_walks_mean_exactly_what_jmespath_means(
    tmp_path_factory: Any, document: Any, path: str
) -> None:
    # The code generator inlines the walk; system_metadata is a free string map, so any path fits.
    mapping = _catalog_with_metadata(tmp_path_factory, path).get("pyxis")
    data, errors = mapping.produce({"order": {}, "probe": document})
    expected = jmespath.search(f"probe.{path}", {"probe": document})
    got = data.get("system_metadata", {}).get("probe")
    if expected is None or (isinstance(expected, str) and not expected.strip()):
        assert got is None
    elif isinstance(expected, str | int):
        assert got == str(expected)
    else:
        assert got is None
        assert any(e.target == "system_metadata.probe" for e in errors)


_literals = st.sampled_from(["`true`", "`false`", "`0`", "`1`", "`null`", "'a'", '`"b"`', "`[]`"])
_conditions = st.builds(
    lambda left, op, right: f"{left} {op} {right}",
    st.sampled_from(["a", "b", "@", "a.b"]),
    st.sampled_from(["==", "!="]),
    _literals | st.sampled_from(["b", "c"]),
) | st.sampled_from(["a", "b", "@"])  # a bare value filters by JMESPath's truthiness


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda e, k: f"{e}.{k}", inner, keys),
        st.builds(lambda e, i: f"{e}[{i}]", inner, st.integers(-2, 2)),
        st.builds(lambda e, c: f"{e}[?{c}]", inner, _conditions),
        st.builds(lambda e, c, k: f"{e}[?{c}].{k}", inner, _conditions, keys),
        st.builds(lambda e, f: f"{e} | {f}", inner, inner),
        st.builds(lambda e, i: f"{e} | [{i}]", inner, st.integers(-1, 1)),
    )


_expressions = st.recursive(st.sampled_from(["a", "b", "c", "@"]), _extend, max_leaves=5)
_filter_documents = st.recursive(
    st.none() | st.booleans() | st.integers(-1, 2) | st.sampled_from([Decimal("1.0"), "a", "b", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=14,
)


@settings(max_examples=500, deadline=None)
@given(document=_filter_documents, expression=_expressions)
@example(document={"a": [{"b": 0}, {"b": ""}, {"b": True}]}, expression="a[?b]")  # 0 is true in JMESPath
@example(document={"a": [{"b": 1}, {"b": True}]}, expression="a[?b == `true`]")  # and 1 is not true
def test_compiled_jmespath_filters_mean_exactly_what_jmespath_means(document: Any, expression: str) -> None:
    try:
        expected = jmespath.search(expression, document)
    except jmespath.exceptions.JMESPathError:
        return  # not an expression the generator meant; JMESPath refuses it
    compiled = compile_path(expression, "json", {})
    assert type(compiled).__name__ in {"_CompiledJmesPath", "DottedJsonPath"}, expression
    assert compiled.scalar(document, document) == expected
    assert type(compiled.scalar(document, document)) is type(expected)


def test_other_jmespath_expressions_still_run_on_jmespath() -> None:
    for expression in ("a[*].b", "length(a)", "a[?b > `1`]", "a[0:2]", "a[]", "{x: a}", "a || b"):
        assert type(compile_path(expression, "json", {})).__name__ == "_JmesPath", expression


_CATALOGS: dict[str, MappingCatalog] = {}


def _catalog_with_metadata(tmp_path_factory: Any, path: str) -> MappingCatalog:
    if path not in _CATALOGS:
        directory = tmp_path_factory.mktemp("mappings")
        shutil.copytree(FIXTURE_MAPPINGS, directory, dirs_exist_ok=True)
        pyxis = directory / "pyxis/order.yaml"
        text = pyxis.read_text(encoding="utf-8")
        text = text.replace(
            "      web_session: {path: order.attributes.webSession}",
            f"      web_session: {{path: order.attributes.webSession}}\n      probe: {{path: '$.probe.{path}'}}",
        )
        pyxis.write_text(text, encoding="utf-8")
        _CATALOGS[path] = MappingCatalog.load(directory)
    return _CATALOGS[path]


@pytest.fixture
def mappings(tmp_path: Path) -> Path:
    target = tmp_path / "mappings"
    shutil.copytree(FIXTURE_MAPPINGS, target)
    return target


def test_steward_text_cannot_become_code(mappings: Path) -> None:
    """Quotes, braces and newlines in keys and constants stay data in the generated function."""
    pyxis = mappings / "pyxis/order.yaml"
    text = pyxis.read_text(encoding="utf-8")
    hostile = "x'}); import os; os.system('boom') #{"
    text = text.replace(
        "      web_session: {path: order.attributes.webSession}",
        "      web_session: {path: order.attributes.webSession}\n"
        f'      "{hostile}": {{const: "{hostile}\\n\\"{{x}}"}}',
    )
    pyxis.write_text(text, encoding="utf-8")
    catalog = MappingCatalog.load(mappings)
    adapter = AdapterRegistry.default().create("pyxis", catalog)
    body = (ROOT / "contracts/samples/pyxis/01_es_in_store_created.json").read_bytes()
    order = adapter.translate(body).mapped.order
    assert order.system_metadata[hostile] == f'{hostile}\n"{{x}}'
    source = catalog.get("pyxis").generated_source
    assert not any(line.lstrip().startswith(("import", "os.")) for line in source.splitlines())


def test_generated_source_is_kept_walks_a_shared_prefix_once_and_shows_in_tracebacks() -> None:
    mapping = MappingCatalog.load(FIXTURE_MAPPINGS).get("pyxis")
    assert mapping.generated_source.startswith("def produce(root):")
    # A walk shared by several fields is done once per payload.
    assert mapping.generated_source.count("root.get('order')") == 1
    # Registered with linecache, so a traceback through the generated function shows its lines.
    assert linecache.getline(f"<mapping {mapping.identity.label}>", 1) == "def produce(root):\n"


def test_a_failing_condition_is_reported_not_raised(mappings: Path) -> None:
    pyxis = mappings / "pyxis/order.yaml"
    text = pyxis.read_text(encoding="utf-8")
    text = text.replace(
        "  notes: {path: order.notes}",
        "  notes:\n    path: order.notes\n    when: {expr: 'qty > 1', with: {qty: {path: order.notes}}}",
    )
    pyxis.write_text(text, encoding="utf-8")
    adapter = AdapterRegistry.default().create("pyxis", MappingCatalog.load(mappings))
    body = (ROOT / "contracts/samples/pyxis/01_es_in_store_created.json").read_bytes()
    with pytest.raises(MappingError) as info:
        adapter.translate(body)
    [error] = info.value.errors
    assert error.target == "notes"
    assert error.rule.startswith("the condition cannot be read:")


# -- XML: child-step paths read from child indexes, with exactly XPath's meaning ------------------

_NS = {"t": "urn:tempo:serviceorder:2"}
_TAGS = ["a", "b", "t:a", "t:b"]


def _clark(name: str) -> str:
    prefix, _, local = name.rpartition(":")
    return f"{{{_NS[prefix]}}}{local}" if prefix else local


@st.composite
def _xml_trees(draw: st.DrawFn, depth: int = 0) -> etree._Element:
    element = etree.Element(_clark(draw(st.sampled_from(_TAGS))))
    for name in draw(st.lists(st.sampled_from(["x", "y"]), unique=True, max_size=2)):
        element.set(name, draw(st.text("pq ", max_size=2)))
    element.text = draw(st.none() | st.text("pq ", max_size=2))
    if depth < 3:
        for child in draw(st.lists(_xml_trees(depth + 1), max_size=3)):
            element.append(child)
            child.tail = draw(st.none() | st.just("tail"))
    return element


_xml_paths = (
    st.tuples(st.lists(st.sampled_from(_TAGS), max_size=3), st.none() | st.sampled_from(["x", "y"]))
    .filter(lambda parts: parts[0] or parts[1])
    .map(lambda parts: "/".join([*parts[0], *([f"@{parts[1]}"] if parts[1] else [])]))
)


@settings(max_examples=400, deadline=None)
@given(tree=_xml_trees(), path=_xml_paths)
def test_child_xml_paths_mean_exactly_what_xpath_means(tree: etree._Element, path: str) -> None:
    compiled = compile_path(path, "xml", _NS)
    assert isinstance(compiled, ChildXmlPath), path
    xpath = etree.XPath(path, namespaces=_NS, smart_strings=False)
    found = xpath(tree)
    assert compiled.scalar(tree, tree) == _xml_value(found)
    if compiled.attribute is None:
        assert compiled.items(tree, tree) == found


def test_other_xpaths_still_use_the_xpath_engine() -> None:
    for path in ("/t:a", "t:a[2]", "t:a/text()", "string(t:a)", "t:a//t:b", "*", "u:a"):
        assert not isinstance(_compiled_or_error(path), ChildXmlPath), path


def _compiled_or_error(path: str) -> object:
    try:
        return compile_path(path, "xml", _NS)
    except PathError as exc:
        return exc


def _all_xml_paths() -> list[str]:
    prefixes: list[list[str]] = [[]]
    for _ in range(3):
        prefixes += [
            [*prefix, tag] for prefix in prefixes if len(prefix) == len(prefixes[-1]) for tag in _TAGS
        ]
    elements = ["/".join(prefix) for prefix in prefixes if prefix]
    attributes = ["/".join([*prefix, f"@{name}"]) for prefix in prefixes if len(prefix) < 3 for name in "xy"]
    return elements + attributes


_PROBES = _all_xml_paths()


@pytest.fixture(scope="module")
def tempo_with_probes(tmp_path_factory: Any) -> Any:
    """The Tempo mapping plus one system_metadata probe for every child path up to three steps."""
    directory = tmp_path_factory.mktemp("mappings")
    shutil.copytree(FIXTURE_MAPPINGS, directory, dirs_exist_ok=True)
    tempo = directory / "tempo/order.yaml"
    text = tempo.read_text(encoding="utf-8")
    anchor = "      tax_id: {path: t:Order/t:Customer/t:TaxId}"
    assert anchor in text
    probes = "".join(f"\n      probe{n}: {{path: '{path}'}}" for n, path in enumerate(_PROBES))
    tempo.write_text(text.replace(anchor, anchor + probes), encoding="utf-8")
    return MappingCatalog.load(directory).get("tempo")


@settings(max_examples=150, deadline=None)
@given(tree=_xml_trees())
def test_generated_xml_reads_mean_exactly_what_xpath_means(
    tempo_with_probes: Any, tree: etree._Element
) -> None:
    # The probes read from the message root, whose child plays the probed document.
    message = etree.Element("{urn:tempo:serviceorder:2}ServiceOrderMessage")
    message.append(tree)
    data, _ = tempo_with_probes.produce(message)
    metadata = data.get("system_metadata", {})
    for n, path in enumerate(_PROBES):
        expected = _xml_value(etree.XPath(path, namespaces=_NS, smart_strings=False)(message))
        assert metadata.get(f"probe{n}") == (expected if expected and expected.strip() else None), path
