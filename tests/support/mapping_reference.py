"""A reference interpreter of compiled mapping nodes: the specification the generated code must meet.

It walks the node tree of ``saleshub.mapping.nodes`` directly, one small function per node kind,
following the meaning written in that module's docstring, and reports the same errors (target,
source, rule, value) in the same order. It is slow and plain on purpose, and only tests use it:
``tests/property/test_generated_code_matches_reference.py`` checks that the generated function
(``saleshub.mapping.codegen``) gives exactly its output for generated mappings and documents.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from saleshub.errors import FieldError
from saleshub.mapping import coercions as co
from saleshub.mapping.nodes import (
    CompiledCondition,
    CompiledFirstOf,
    CompiledList,
    CompiledNode,
    CompiledObject,
    CompiledValue,
    ConstRead,
    ExprRead,
    PathRead,
    PositionRead,
    Read,
    Run,
)
from saleshub.mapping.paths import ChildXmlPath, DottedJsonPath, child_elements, child_index, first_attribute

__all__ = ["interpret"]

_READ_ERRORS = (ValueError, TypeError, ArithmeticError)


class _Unread:
    """A read that failed (already reported): the value is absent and no default applies."""


_UNREAD = _Unread()


class _Reported(Exception):  # noqa: N818 - control flow, as in the generated code
    """A code missing from a crosswalk was reported; the value is absent."""


@dataclass(frozen=True)
class _Scope:
    item: Any
    root: Any
    position: int
    target: str  # prefix of canonical targets, e.g. "lines[2]."
    source: str  # prefix of source descriptions, e.g. "order.items[2]."


def interpret(root: CompiledObject, document: Any) -> tuple[dict[str, Any], list[FieldError]]:
    """Map ``document`` with the node tree ``root``: the canonical input and the field errors."""
    run = Run()
    out = _object(root, _Scope(document, document, 1, "", ""), run)
    return (out or {}), run.errors


def _node(node: CompiledNode, scope: _Scope, run: Run) -> Any:
    if isinstance(node, CompiledValue):
        return _value(node, scope, run)
    if isinstance(node, CompiledFirstOf):
        return _first_of(node, scope, run)
    if isinstance(node, CompiledList):
        return _list(node, scope, run)
    if isinstance(node, CompiledObject):
        return _object(node, scope, run)
    raise TypeError(f"no meaning defined for {type(node).__name__}")


def _holds(when: CompiledCondition | None, target: str, scope: _Scope, run: Run) -> bool:
    if when is None:
        return True
    raw = _read(when.read, target, scope.source + when.describe, scope, run, "the condition cannot be read")
    return not isinstance(raw, _Unread) and bool(when.test(raw))


def _fields(children: tuple[CompiledNode, ...], scope: _Scope, run: Run) -> dict[str, Any]:
    values = [(child.name, _node(child, scope, run)) for child in children]
    return {name: value for name, value in values if value is not None}


def _object(node: CompiledObject, scope: _Scope, run: Run) -> dict[str, Any] | None:
    if not _holds(node.when, scope.target + node.name, scope, run):
        return None
    inner = replace(scope, target=f"{scope.target}{node.name}.") if node.name else scope
    return _fields(node.children, inner, run) or None


def _list(node: CompiledList, scope: _Scope, run: Run) -> list[dict[str, Any]] | None:
    target = scope.target + node.name
    if not _holds(node.when, target, scope, run):
        return None
    elements = _elements(node, scope)
    if elements is None:
        run.fail(target, scope.source + node.each.text, "expected a list", None, False)
        return None
    xml = node.separator == "/"
    return [
        _fields(
            node.children,
            _Scope(
                element,
                scope.root,
                index + 1,
                f"{target}[{index}].",
                f"{scope.source}{node.each.text}[{index + 1 if xml else index}]{node.separator}",
            ),
            run,
        )
        for index, element in enumerate(elements)
    ]


def _elements(node: CompiledList, scope: _Scope) -> list[Any] | None:
    path = node.each
    if isinstance(path, ChildXmlPath) and path.attribute is None:
        return _xml_elements(scope.item, path.tags)
    if isinstance(path, DottedJsonPath):
        found = _walk(scope.root if path.from_root else scope.item, path.keys)
        if found is None:
            return []
        return found if isinstance(found, list) else None
    items: list[Any] | None = path.items(scope.item, scope.root)
    return items


def _first_of(node: CompiledFirstOf, scope: _Scope, run: Run) -> Any:
    for candidate in node.candidates:
        found = _value(candidate, scope, run)
        if found is not None:
            return found
    if node.default is None and node.required:
        sources = " | ".join(c.source for c in node.candidates)
        run.fail(scope.target + node.name, sources, "no candidate yields a value", None, False)
    return node.default


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _value(node: CompiledValue, scope: _Scope, run: Run) -> Any:
    target, source = scope.target + node.name, scope.source + node.source
    if not _holds(node.when, target, scope, run):
        return None
    raw = _read(node.read, target, source, scope, run)
    if isinstance(raw, _Unread):
        return None
    if _blank(raw):
        if node.default is not None:
            return node.default
        if node.required:
            run.fail(target, source, "required value is missing", None, False)
        return None
    return _convert(node, raw, target, source, scope, run)


def _convert(node: CompiledValue, raw: Any, target: str, source: str, scope: _Scope, run: Run) -> Any:
    try:
        value = raw
        if node.transforms:
            value = co.to_text(value)
            for name in node.transforms:
                value = co.TRANSFORMS[name](value)
        if node.lookup is not None:
            value = _lookup(node, value, raw, target, source, run)
        if value is None:
            return None
        if node.convert is not None:
            return node.convert(value)
        if node.combine is not None:
            qualifier = _value(node.qualifier, scope, run) if node.qualifier is not None else None
            return node.combine(value, qualifier)
        return value
    except co.CoercionError as exc:
        run.fail(target, source, str(exc), raw, True)
    except _READ_ERRORS as exc:
        run.fail(target, source, f"cannot be converted ({type(exc).__name__}: {exc})", raw, True)
    except _Reported:
        pass
    return None


def _lookup(node: CompiledValue, value: Any, raw: Any, target: str, source: str, run: Run) -> Any:
    assert node.lookup is not None
    code = co.to_text(value)
    found = node.lookup.table.get(code)
    if found is not None:
        return found
    if node.lookup.policy == "pass_through":
        return code
    if node.lookup.policy == "default":
        return node.lookup.default
    run.fail(target, source, node.lookup.problem, raw, True)
    raise _Reported


def _read(
    read: Read, target: str, source: str, scope: _Scope, run: Run, failure: str = "cannot be read"
) -> Any:
    if isinstance(read, ConstRead):
        return read.value
    if isinstance(read, PositionRead):
        return scope.position
    if isinstance(read, PathRead) and isinstance(read.path, DottedJsonPath):
        return _walk(scope.root if read.path.from_root else scope.item, read.path.keys)
    if isinstance(read, PathRead) and isinstance(read.path, ChildXmlPath):
        return _xml_value(scope.item, read.path)
    try:
        if isinstance(read, PathRead):
            return read.path.scalar(scope.item, scope.root)
        assert isinstance(read, ExprRead)
        env = {key: _value(binding, scope, run) for key, binding in read.bindings}
        return read.expression.evaluate(env)
    except _READ_ERRORS as exc:
        run.fail(target, source, f"{failure}: {exc}", None, False)
        return _UNREAD


def _walk(value: Any, keys: tuple[str | int, ...]) -> Any:
    for key in keys:
        if isinstance(key, int):
            fits = isinstance(value, list) and -len(value) <= key < len(value)
            value = value[key] if fits else None
        else:
            value = value.get(key) if isinstance(value, dict) else None
    return value


def _xml_elements(element: Any, tags: tuple[str, ...]) -> list[Any]:
    found: Any = (element,)
    for tag in tags:
        found = child_elements(found, tag)
    return list(found)


def _xml_value(element: Any, path: ChildXmlPath) -> Any:
    if path.attribute is not None:
        if path.tags:
            return first_attribute(_xml_elements(element, path.tags), path.attribute)
        return element.get(path.attribute)
    index = child_index(_xml_elements(element, path.tags[:-1]))
    found = index.get(path.tags[-1])
    return None if found is None else found.text
