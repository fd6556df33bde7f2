"""The interpreter of compiled mapping nodes, and the field traces it can record.

It walks the node tree of ``saleshub.mapping.nodes`` directly, one small method per node kind,
following the meaning written in that module's docstring, and reports the same errors (target,
source, rule, value) in the same order as the generated function (``saleshub.mapping.codegen``).
It is the specification the generated code must meet:
``tests/property/test_generated_code_matches_reference.py`` checks that both give exactly the same
output for generated mappings and documents and for every golden sample.

``interpret(root, document)`` maps; ``trace(root, document)`` maps and also records, for every
canonical field, how its value came about (``FieldTrace``): the source path read and the raw value
found (with the XML line), each transform with its result, the crosswalk row used, the default, the
conversion, conditions and candidates, the errors. The hub maps with the generated code; tracing is
for explaining one stored order after the fact (``saleshub orders explain``), so ingest pays nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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

__all__ = ["FieldTrace", "Step", "conversion_name", "interpret", "trace"]

_READ_ERRORS = (ValueError, TypeError, ArithmeticError)


class _Unread:
    """A read that failed (already reported): the value is absent and no default applies."""


_UNREAD = _Unread()


class _Reported(Exception):  # noqa: N818 - control flow, as in the generated code
    """A code missing from a crosswalk was reported; the value is absent."""


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happened to a field's value, in order.

    ``kind`` is one of ``read``, ``transform``, ``lookup``, ``default``, ``convert``, ``condition``,
    ``candidate``, ``part`` (a value the field's value is computed from: an expression's binding, an
    amount's currency, a phone number's region), ``elements`` (a repeated group's elements) and
    ``error``. ``depth`` is 1 for the steps of a part or candidate, 2 inside those, and so on.
    ``value`` is the value after the step (``has_value`` False: there is none).
    """

    kind: str
    text: str
    value: Any = None
    has_value: bool = True
    depth: int = 0
    source: str | None = None  # the concrete path read, e.g. order.items[1].sku
    line: int | None = None  # the source line of the XML element read
    crosswalk: str | None = None  # crosswalks/channels.csv
    row: int | None = None  # the line of the crosswalk row used
    row_cells: dict[str, str] | None = None


@dataclass(slots=True)
class FieldTrace:
    """How one canonical field (``lines[0].unit_price``) got its value from one payload."""

    target: str
    rule_line: int | None
    steps: list[Step] = field(default_factory=list)
    value: Any = None  # what the mapping produced, before the canonical model validates it
    errors: list[FieldError] = field(default_factory=list)
    group: bool = False  # a structure or repeated group (its condition, its elements)


@dataclass(frozen=True)
class _Scope:
    item: Any
    root: Any
    position: int
    target: str  # prefix of canonical targets, e.g. "lines[2]."
    source: str  # prefix of source descriptions, e.g. "order.items[2]."


def conversion_name(node: CompiledValue) -> str:
    """The conversion a value node applies, in words (``decimal``, ``money in minor units`` …)."""
    if node.convert is None and node.combine is None:
        return "text (as read)"
    return "text" if node.value_type == "string" else node.value_type


def interpret(root: CompiledObject, document: Any) -> tuple[dict[str, Any], list[FieldError]]:
    """Map ``document`` with the node tree ``root``: the canonical input and the field errors."""
    interpreter = _Interpreter(None)
    out = interpreter.object(root, _Scope(document, document, 1, "", ""))
    return (out or {}), interpreter.run.errors


def trace(root: CompiledObject, document: Any) -> tuple[dict[str, Any], list[FieldError], list[FieldTrace]]:
    """Map ``document`` as ``interpret`` does, and say for every field how it got its value."""
    traces: list[FieldTrace] = []
    interpreter = _Interpreter(traces)
    out = interpreter.object(root, _Scope(document, document, 1, "", ""))
    return (out or {}), interpreter.run.errors, traces


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _plain(value: Any) -> Any:
    """A value as found, without lxml's link to its document (a "smart string" is a ``str``)."""
    return str(value) if isinstance(value, str) else value


class _Interpreter:
    """One payload's mapping; records steps when ``traces`` is a list."""

    def __init__(self, traces: list[FieldTrace] | None) -> None:
        self.run = Run()
        self.traces = traces
        self.current: FieldTrace | None = None
        self.depth = 0

    # -- recording -----------------------------------------------------------------------------

    def note(self, kind: str, text: str, value: Any = None, has_value: bool = True, **extra: Any) -> None:
        if self.current is not None:
            self.current.steps.append(Step(kind, text, value, has_value, self.depth, **extra))

    def begin(self, target: str, node: CompiledNode, group: bool = False) -> tuple[FieldTrace | None, int]:
        if self.traces is None:
            return None, 0
        outer = self.current
        self.current = FieldTrace(target, getattr(node, "line", None), group=group)
        self.traces.append(self.current)
        return outer, len(self.run.errors)

    def end(self, outer: FieldTrace | None, errors_before: int, value: Any) -> None:
        if self.current is None:
            return
        self.current.value = value
        self.current.errors = self.run.errors[errors_before:]
        for error in self.current.errors:
            self.note("error", error.rule, error.value, error.has_value, source=error.source)
        self.current = outer

    # -- structure -----------------------------------------------------------------------------

    def node(self, node: CompiledNode, scope: _Scope) -> Any:
        if isinstance(node, CompiledValue | CompiledFirstOf):
            outer, before = self.begin(scope.target + node.name, node)
            found = self.value(node, scope) if isinstance(node, CompiledValue) else self.first_of(node, scope)
            self.end(outer, before, found)
            return found
        if isinstance(node, CompiledList):
            return self.group(node, scope)
        if isinstance(node, CompiledObject):
            return self.object(node, scope)
        raise TypeError(f"no meaning defined for {type(node).__name__}")

    def holds(self, when: CompiledCondition | None, target: str, scope: _Scope) -> bool:
        if when is None:
            return True
        source = scope.source + when.describe
        raw = self.read(when.read, target, source, scope, "the condition cannot be read")
        result = not isinstance(raw, _Unread) and bool(when.test(raw))
        if self.current is not None:  # the value tested is the read step's just before
            self.note(
                "condition", f"only when {when.describe}: {'holds' if result else 'fails'}", has_value=False
            )
        return result

    def fields(self, children: tuple[CompiledNode, ...], scope: _Scope) -> dict[str, Any]:
        values = [(child.name, self.node(child, scope)) for child in children]
        return {name: value for name, value in values if value is not None}

    def object(self, node: CompiledObject, scope: _Scope) -> dict[str, Any] | None:
        target = scope.target + node.name
        if node.when is not None:
            outer, before = self.begin(target, node, group=True)
            holds = self.holds(node.when, target, scope)
            self.end(outer, before, None)
            if not holds:
                return None
        inner = replace(scope, target=f"{scope.target}{node.name}.") if node.name else scope
        return self.fields(node.children, inner) or None

    def group(self, node: CompiledList, scope: _Scope) -> list[dict[str, Any]] | None:
        target = scope.target + node.name
        outer, before = self.begin(target, node, group=True)
        try:
            if not self.holds(node.when, target, scope):
                return None
            elements = self.elements(node, scope)
            source = scope.source + node.each.text
            if elements is None:
                self.note("elements", f"{source} is not a list", has_value=False, source=source)
                self.run.fail(target, source, "expected a list", None, False)
                return None
            self.note("elements", f"{len(elements)} element(s) at {source}", len(elements), source=source)
            if len(elements) > node.max_items:
                rule = f"has {len(elements)} elements; at most {node.max_items} are accepted"
                self.run.fail(target, source, rule, None, False)
                elements = elements[: node.max_items]
        finally:
            self.end(outer, before, None)
        xml = node.separator == "/"
        return [
            self.fields(
                node.children,
                _Scope(
                    element,
                    scope.root,
                    index + 1,
                    f"{target}[{index}].",
                    f"{scope.source}{node.each.text}[{index + 1 if xml else index}]{node.separator}",
                ),
            )
            for index, element in enumerate(elements)
        ]

    def elements(self, node: CompiledList, scope: _Scope) -> list[Any] | None:
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

    # -- values --------------------------------------------------------------------------------

    def first_of(self, node: CompiledFirstOf, scope: _Scope) -> Any:
        for number, candidate in enumerate(node.candidates, 1):
            self.note("candidate", f"candidate {number} of {len(node.candidates)}: {candidate.source}")
            found = self.part(candidate, scope)
            if found is not None:
                self.note("candidate", f"candidate {number} yields the value", found)
                return found
        if node.default is None and node.required:
            sources = " | ".join(c.source for c in node.candidates)
            self.run.fail(scope.target + node.name, sources, "no candidate yields a value", None, False)
        if node.default is not None:
            self.note("default", "no candidate yields a value: the default applies", node.default)
        return node.default

    def part(self, node: CompiledValue, scope: _Scope) -> Any:
        """A value that is part of the current field's (a candidate, a binding, a qualifier)."""
        self.depth += 1
        try:
            return self.value(node, scope)
        finally:
            self.depth -= 1

    def value(self, node: CompiledValue, scope: _Scope) -> Any:
        target, source = scope.target + node.name, scope.source + node.source
        if not self.holds(node.when, target, scope):
            return None
        raw = self.read(node.read, target, source, scope)
        if isinstance(raw, _Unread):
            return None
        if _blank(raw):
            if node.default is not None:
                self.note("default", "nothing there: the default applies", node.default)
                return node.default
            if node.required:
                self.run.fail(target, source, "required value is missing", None, False)
            return None
        return self.convert(node, raw, target, source, scope)

    def convert(self, node: CompiledValue, raw: Any, target: str, source: str, scope: _Scope) -> Any:
        try:
            value = raw
            if node.transforms:
                value = co.to_text(value)
                for name in node.transforms:
                    value = co.TRANSFORMS[name](value)
                    self.note("transform", name, value)
            if node.lookup is not None:
                value = self.lookup(node, value, raw, target, source)
            if value is None:
                return None
            if node.convert is not None:
                converted = node.convert(value)
                self.note("convert", conversion_name(node), converted)
                return converted
            if node.combine is not None:
                qualifier = None
                if node.qualifier is not None:
                    self.note("part", f"{node.qualifier.name}: {node.qualifier.source}")
                    qualifier = self.part(node.qualifier, scope)
                combined = node.combine(value, qualifier)
                self.note("convert", conversion_name(node), combined)
                return combined
            return value
        except co.CoercionError as exc:
            self.run.fail(target, source, str(exc), raw, True)
        except _READ_ERRORS as exc:
            self.run.fail(target, source, f"cannot be converted ({type(exc).__name__}: {exc})", raw, True)
        except _Reported:
            pass
        return None

    def lookup(self, node: CompiledValue, value: Any, raw: Any, target: str, source: str) -> Any:
        lookup = node.lookup
        assert lookup is not None
        code = co.to_text(value)
        found = lookup.table.get(code)
        where = f"{lookup.file} column {lookup.column!r}"
        if found is not None:
            line, cells = lookup.rows.get(code, (None, None))
            self.note(
                "lookup", f"{code!r} in {where}", found, crosswalk=lookup.file, row=line, row_cells=cells
            )
            return found
        if lookup.policy == "pass_through":
            self.note("lookup", f"{code!r} is not in {where}: kept as it is", code, crosswalk=lookup.file)
            return code
        if lookup.policy == "default":
            self.note(
                "lookup",
                f"{code!r} is not in {where}: the lookup's default",
                lookup.default,
                crosswalk=lookup.file,
            )
            return lookup.default
        self.note("lookup", f"{code!r} is not in {where}", has_value=False, crosswalk=lookup.file)
        self.run.fail(target, source, lookup.problem, raw, True)
        raise _Reported

    # -- reading -------------------------------------------------------------------------------

    def read(
        self, read: Read, target: str, source: str, scope: _Scope, failure: str = "cannot be read"
    ) -> Any:
        if isinstance(read, ConstRead):
            self.note("read", "the constant", read.value)
            return read.value
        if isinstance(read, PositionRead):
            self.note("read", "the position of the element in its group", scope.position)
            return scope.position
        if isinstance(read, PathRead) and isinstance(read.path, DottedJsonPath):
            found = _walk(scope.root if read.path.from_root else scope.item, read.path.keys)
            self.note_read(read.path.text, source, found, None)
            return found
        if isinstance(read, PathRead) and isinstance(read.path, ChildXmlPath):
            found, line = _xml_value(scope.item, read.path)
            self.note_read(read.path.text, source, found, line)
            return found
        try:
            if isinstance(read, PathRead):
                found = read.path.scalar(scope.item, scope.root)
                self.note_read(read.path.text, source, found, _line_of(found))
                return found
            assert isinstance(read, ExprRead)
            env = {}
            for key, binding in read.bindings:
                self.note("part", f"{key}: {binding.source}")
                env[key] = self.part(binding, scope)
            found = read.expression.evaluate(env)
            self.note("read", source, found)
            return found
        except _READ_ERRORS as exc:
            self.run.fail(target, source, f"{failure}: {exc}", None, False)
            return _UNREAD

    def note_read(self, path: str, source: str, found: Any, line: int | None) -> None:
        if self.current is None:
            return
        has_value = found is not None
        text = source if has_value else f"{source}: nothing there"
        self.note("read", text, _plain(found), has_value, source=source, line=line)


def _line_of(found: Any) -> int | None:
    """The source line of an XPath result (an element, or text/attribute that knows its element)."""
    parent = getattr(found, "getparent", None)
    element = parent() if callable(parent) else None
    line = getattr(element if element is not None else found, "sourceline", None)
    return line if isinstance(line, int) else None


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


def _xml_value(element: Any, path: ChildXmlPath) -> tuple[Any, int | None]:
    """The value of ``path`` from ``element``, and the line of the element it was read from."""
    if path.attribute is not None:
        if path.tags:
            elements = _xml_elements(element, path.tags)
            value = first_attribute(elements, path.attribute)
            holder = next((e for e in elements if e.get(path.attribute) is not None), None)
            return value, None if holder is None else holder.sourceline
        return element.get(path.attribute), element.sourceline
    index = child_index(_xml_elements(element, path.tags[:-1]))
    found = index.get(path.tags[-1])
    return (None, None) if found is None else (found.text, found.sourceline)
