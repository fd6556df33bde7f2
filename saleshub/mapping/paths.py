"""Source paths, compiled once: JMESPath for JSON documents, XPath with declared namespaces for XML.

A path is evaluated against the current item (the document, or one element of an ``each`` group).
In JSON mappings a path starting with ``$.`` is evaluated against the whole document instead; in XML
mappings an absolute XPath (``/t:Order/...``) already does that.

Plain JSON paths of keys and list indexes (``customer.address.city``, ``shipTo[0].city``) are by far
the most common. They are kept as ``DottedJsonPath``, which the code generator turns into a direct
walk with exactly JMESPath's meaning (a missing key, an index out of range or a value of the wrong
kind gives ``null``), skipping the JMESPath interpreter, which is several times slower per call.

Other JMESPath expressions built only from fields, indexes, pipes, ``@``, literals and filters with
``==``/``!=`` (``totals[?TotalCode == 'NET'].TotalAmount | [0]``) are compiled once into nested
Python closures that do what JMESPath's tree interpreter does, node for node, without its per-node
dispatch; anything else (functions, wildcards, slices, ordering comparisons …) runs on JMESPath.

Likewise, XPaths made only of child steps with an optional final attribute (``t:Order/t:Customer``,
``t:Order/t:Customer/@type``, ``@sequence``) are kept as ``ChildXmlPath``: the code generator reads
them from per-element child indexes built once per payload, with exactly XPath's meaning (the first
match in document order), instead of running libxml2's XPath engine once per field.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import jmespath
import jmespath.exceptions
import jmespath.visitor
from lxml import etree
from typing_extensions import override

__all__ = [
    "ChildXmlPath",
    "DottedJsonPath",
    "Evaluate",
    "PathError",
    "SourcePath",
    "child_elements",
    "child_index",
    "compile_path",
    "first_attribute",
]

_NAME_STEP = r"[A-Za-z_][A-Za-z0-9_]*(?:\[-?[0-9]+\])*"
_DOTTED = re.compile(rf"^{_NAME_STEP}(?:\.{_NAME_STEP})*$")
_STEP_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\[(-?[0-9]+)\]")
_ROOT_PREFIX = "$."
_NCNAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
_QNAME = rf"(?:{_NCNAME}:)?{_NCNAME}"
_CHILD_STEPS = re.compile(rf"^(?:{_QNAME}/)*(?:{_QNAME}|@{_QNAME})$")


class PathError(ValueError):
    """A path is not valid JMESPath / XPath, or uses an undeclared namespace prefix."""


class SourcePath(ABC):
    """A compiled path into a decoded source document."""

    __slots__ = ("from_root", "text")

    def __init__(self, text: str, from_root: bool) -> None:
        self.text, self.from_root = text, from_root

    @abstractmethod
    def scalar(self, item: Any, root: Any) -> Any:
        """The single value at this path (``None`` when absent)."""

    @abstractmethod
    def items(self, item: Any, root: Any) -> list[Any] | None:
        """The repeated elements at this path; ``None`` when the path holds a non-list value."""


class _JsonPath(SourcePath):
    """A JSON path: its repeated elements are the list it selects (none when it selects null)."""

    __slots__ = ()

    @override
    def items(self, item: Any, root: Any) -> list[Any] | None:
        found = self.scalar(item, root)
        if found is None:
            return []
        return found if isinstance(found, list) else None


class DottedJsonPath(_JsonPath):
    """A JMESPath made of plain keys and list indexes: ``a.b.c``, ``shipTo[0].city``.

    ``keys`` holds the steps: a ``str`` selects a key of an object, an ``int`` an element of a list
    (negative from the end); anything else along the way gives ``None``, as in JMESPath.
    """

    __slots__ = ("keys",)

    def __init__(self, text: str, from_root: bool, keys: tuple[str | int, ...]) -> None:
        super().__init__(text, from_root)
        self.keys = keys

    @override
    def scalar(self, item: Any, root: Any) -> Any:
        current = root if self.from_root else item
        for key in self.keys:
            if type(key) is int:
                if type(current) is not list or not -len(current) <= key < len(current):
                    return None
                current = current[key]
            elif type(current) is dict:
                current = current.get(key)
            else:
                return None
        return current


Evaluate = Callable[[Any], Any]
# JMESPath's own equality (0/1 never equal false/true), so a compiled filter compares exactly alike.
_EQUALITY: dict[str, Callable[[Any, Any], bool]] = {
    name: jmespath.visitor.TreeInterpreter.COMPARATOR_FUNC[name] for name in ("eq", "ne")
}


def _is_false(value: Any) -> bool:
    # JMESPath's falsiness, spelled as in its interpreter: '', [], {}, null and false.
    return value in ("", [], {}) or value is None or value is False


def _chain(steps: list[Evaluate]) -> Evaluate:
    def chain(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return chain


def _field(name: str) -> Evaluate:
    return lambda value: value.get(name) if type(value) is dict else None


def _index(position: int) -> Evaluate:
    def index(value: Any) -> Any:
        if not isinstance(value, list):
            return None
        try:
            return value[position]
        except IndexError:
            return None

    return index


def _filter(base: Evaluate, keep: Evaluate, then: Evaluate) -> Evaluate:
    def projection(value: Any) -> Any:
        found = base(value)
        if not isinstance(found, list):
            return None
        return [
            result
            for element in found
            if not _is_false(keep(element)) and (result := then(element)) is not None
        ]

    return projection


def _comparison(compare: Callable[[Any, Any], bool], left: Evaluate, right: Evaluate) -> Evaluate:
    return lambda value: compare(left(value), right(value))


def _closure(node: Mapping[str, Any]) -> Evaluate | None:
    """``node`` (a JMESPath AST) as a closure, or ``None`` if it uses anything not covered here."""
    kind, children = node["type"], node.get("children", [])
    if kind == "field":
        return _field(node["value"])
    if kind == "index":
        return _index(node["value"])
    if kind in ("identity", "current"):
        return lambda value: value
    if kind == "literal":
        constant = node["value"]
        return lambda value: constant
    if not all(isinstance(child, dict) for child in children):
        return None  # a slice: its children are numbers
    parts = [_closure(child) for child in children]
    if any(part is None for part in parts):
        return None
    steps = [part for part in parts if part is not None]
    if kind in ("subexpression", "index_expression", "pipe"):
        return _chain(steps)
    if kind == "filter_projection":
        return _filter(steps[0], steps[2], steps[1])
    if kind == "comparator" and node["value"] in _EQUALITY:
        return _comparison(_EQUALITY[node["value"]], steps[0], steps[1])
    return None


class _CompiledJmesPath(_JsonPath):
    __slots__ = ("evaluate",)

    def __init__(self, text: str, from_root: bool, evaluate: Evaluate) -> None:
        super().__init__(text, from_root)
        self.evaluate = evaluate

    @override
    def scalar(self, item: Any, root: Any) -> Any:
        return self.evaluate(root if self.from_root else item)


class _JmesPath(_JsonPath):
    __slots__ = ("compiled",)

    def __init__(self, text: str, from_root: bool, compiled: Any) -> None:
        super().__init__(text, from_root)
        self.compiled = compiled

    @override
    def scalar(self, item: Any, root: Any) -> Any:
        return self.compiled.search(root if self.from_root else item)


def _xml_value(found: Any) -> Any:
    if isinstance(found, list):
        if not found:
            return None
        found = found[0]
    if isinstance(found, etree._Element):
        return found.text
    if isinstance(found, bool | str):
        return str(found) if isinstance(found, str) else found
    if isinstance(found, float):
        # XPath numbers are binary floats; only whole numbers (count(), position()) are safe.
        if found.is_integer():
            return int(found)
        raise ValueError("the XPath returned a fractional number; select the text instead")
    return found


def child_elements(parents: Sequence[Any], tag: str) -> list[Any]:
    """The children of ``parents`` with ``tag``, in document order."""
    # Parents at one depth have disjoint subtrees, so concatenating their children keeps the order.
    return [child for parent in parents for child in parent.iterchildren(tag)]


def child_index(parents: Sequence[Any]) -> dict[Any, Any]:
    """The first child element of each tag among the children of ``parents``, in document order."""
    # Built backwards so that the first child of a tag is the one left in the dictionary.
    return {child.tag: child for parent in reversed(parents) for child in reversed(parent)}


def first_attribute(elements: Sequence[Any], name: str) -> str | None:
    """The value of attribute ``name`` on the first of ``elements`` that has it."""
    for element in elements:
        value: str | None = element.get(name)
        if value is not None:
            return value
    return None


class ChildXmlPath(SourcePath):
    """An XPath of child steps and an optional final attribute: ``t:Order/t:Lines``, ``t:Order/@id``.

    ``tags`` holds the element steps as lxml tags (``{namespace}Name``, or ``Name`` without one);
    ``attribute`` the final attribute's name in the same form, or ``None``. Its value is what the
    XPath gives: the text of the first matching element in document order (the attribute's value
    for an attribute path), ``None`` when nothing matches.
    """

    __slots__ = ("attribute", "tags")

    def __init__(self, text: str, tags: tuple[str, ...], attribute: str | None) -> None:
        super().__init__(text, False)
        self.tags, self.attribute = tags, attribute

    def elements(self, item: Any) -> list[Any]:
        """The elements the element steps reach from ``item``, in document order."""
        found = [item]
        for tag in self.tags:
            found = child_elements(found, tag)
        return found

    @override
    def scalar(self, item: Any, root: Any) -> Any:
        found = self.elements(item)
        if self.attribute is not None:
            return first_attribute(found, self.attribute)
        return found[0].text if found else None

    @override
    def items(self, item: Any, root: Any) -> list[Any] | None:
        return [] if self.attribute is not None else self.elements(item)


def _child_xml_path(text: str, namespaces: dict[str, str]) -> ChildXmlPath | None:
    """``text`` as a ``ChildXmlPath``, or ``None`` when it needs the XPath engine."""
    if not _CHILD_STEPS.match(text):
        return None
    names: list[str] = []
    for step in text.split("/"):
        prefix, _, local = step.removeprefix("@").rpartition(":")
        if prefix and prefix not in namespaces:
            return None  # the XPath compiler reports the undeclared prefix
        names.append(f"{{{namespaces[prefix]}}}{local}" if prefix else local)
    if text.rsplit("/", 1)[-1].startswith("@"):
        return ChildXmlPath(text, tuple(names[:-1]), names[-1])
    return ChildXmlPath(text, tuple(names), None)


class _XPath(SourcePath):
    __slots__ = ("compiled",)

    def __init__(self, text: str, compiled: etree.XPath) -> None:
        super().__init__(text, text.startswith("/"))
        self.compiled = compiled

    @override
    def scalar(self, item: Any, root: Any) -> Any:
        return _xml_value(self.compiled(item))

    @override
    def items(self, item: Any, root: Any) -> list[Any] | None:
        found = self.compiled(item)
        if not isinstance(found, list):
            return None
        return [element for element in found if isinstance(element, etree._Element)]


def compile_path(text: str, fmt: Literal["json", "xml"], namespaces: dict[str, str]) -> SourcePath:
    """Compile ``text`` for documents of format ``fmt``; raises ``PathError`` with the reason."""
    if fmt == "xml":
        simple = _child_xml_path(text, namespaces)
        if simple is not None:
            return simple
        try:
            return _XPath(text, etree.XPath(text, namespaces=namespaces, smart_strings=False))
        except etree.XPathSyntaxError as exc:
            raise PathError(f"not a valid XPath: {exc}") from None
    from_root = text.startswith(_ROOT_PREFIX)
    body = text[len(_ROOT_PREFIX) :] if from_root else text
    if _DOTTED.match(body):
        steps = tuple(
            int(index) if index else match.group(0)
            for match in _STEP_PART.finditer(body)
            for index in (match.group(1),)
        )
        return DottedJsonPath(text, from_root, steps)
    try:
        compiled = jmespath.compile(body)
    except jmespath.exceptions.JMESPathError as exc:
        raise PathError(f"not a valid JMESPath expression: {exc}") from None
    evaluate = _closure(compiled.parsed)
    if evaluate is not None:
        return _CompiledJmesPath(text, from_root, evaluate)
    return _JmesPath(text, from_root, compiled)
