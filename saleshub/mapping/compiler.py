"""Compile a validated mapping file into runnable nodes, checking it against the canonical model.

Everything that can be checked before the first payload is checked here, and every problem is
collected (with the file line of the key it concerns) rather than stopping at the first: each target
field exists in the canonical model and is not one the hub sets itself; each required canonical field
is mapped; the value type fits the field (a time field needs ``type: datetime``, an amount
``type: money`` …); every path and expression compiles; every lookup's crosswalk and columns exist
and hold no duplicate or empty codes; constants, defaults and crosswalk results for enum fields are
members of the enum.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from canonical.model import Money, ServiceOrder
from saleshub.errors import LoadIssue, generic_target
from saleshub.mapping import coercions as co
from saleshub.mapping.crosswalk import Crosswalk, load_crosswalk
from saleshub.mapping.expressions import ExpressionError, compile_expression
from saleshub.mapping.nodes import (
    CompiledCondition,
    CompiledFirstOf,
    CompiledList,
    CompiledLookup,
    CompiledNode,
    CompiledObject,
    CompiledValue,
    ConstRead,
    ExprRead,
    PathRead,
    PositionRead,
    Read,
    money_value,
)
from saleshub.mapping.paths import PathError, SourcePath, compile_path
from saleshub.mapping.spec import (
    Condition,
    FirstOfNode,
    ListNode,
    LookupSpec,
    MappingFile,
    Node,
    ObjectNode,
    ValueNode,
)
from saleshub.mapping.yaml_source import Located, dotted_key

__all__ = ["DEFAULT_MAX_ITEMS", "SET_BY_HUB", "CompiledTree", "Crosswalks", "SpecPath", "compile_mapping"]

#: Canonical fields that the hub fills in itself; a mapping must not set them.
SET_BY_HUB = frozenset({"hub_order_id", "source_system"})
#: How many elements a repeated group maps when its canonical list field states no ``max_length``.
DEFAULT_MAX_ITEMS = 1000

SpecPath = tuple[str | int, ...]


class Crosswalks:
    """Crosswalk files loaded on first use and shared by every mapping in one catalog."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._loaded: dict[str, tuple[Crosswalk | None, list[LoadIssue]]] = {}
        self._tables: dict[tuple[str, str, str], tuple[dict[str, str], list[LoadIssue]]] = {}
        self.reported: set[tuple[str, str, str]] = set()

    def known(self) -> list[str]:
        """Names of the crosswalk files present."""
        return sorted(p.stem for p in self.directory.glob("*.csv"))

    def get(self, name: str) -> tuple[Crosswalk | None, list[LoadIssue]]:
        """The crosswalk ``name`` and the problems of its file (reported once per catalog)."""
        if name not in self._loaded:
            path = self.directory / f"{name}.csv"
            if not path.is_file():
                self._loaded[name] = (None, [])
            else:
                self._loaded[name] = load_crosswalk(path, name)
        return self._loaded[name]

    def table(self, crosswalk: Crosswalk, column: str, to: str) -> tuple[dict[str, str], list[LoadIssue]]:
        """The lookup dictionary for one column pair, computed and checked once."""
        key = (crosswalk.name, column, to)
        if key not in self._tables:
            self._tables[key] = crosswalk.table(column, to)
        return self._tables[key]


@dataclass
class CompiledTree:
    """The result of compiling one mapping file."""

    root: CompiledObject | None
    issues: list[LoadIssue]
    tables_used: dict[str, str] = field(default_factory=dict)  # crosswalk name -> sha256
    sources: dict[str, str] = field(default_factory=dict)  # generic target -> source description


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """Strip ``Annotated`` and ``Optional``; return the bare type and whether None is allowed."""
    optional = False
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(get_args(annotation))
            annotation = args[0]
        else:
            return annotation, optional


def _max_items(info: FieldInfo) -> int:
    """The most elements a list field of the canonical model may hold (``max_length``)."""
    limits = [item.max_length for item in info.metadata if isinstance(item, annotated_types.MaxLen)]
    return min(limits, default=DEFAULT_MAX_ITEMS)


_TYPE_FOR: dict[Any, tuple[str, ...]] = {
    str: ("string", "phone", "email"),
    int: ("int",),
    Decimal: ("decimal",),
    datetime: ("datetime",),
    AwareDatetime: ("datetime",),
    bool: ("bool",),
}


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


class _Compiler:
    def __init__(self, spec: MappingFile, located: Located, file: str, crosswalks: Crosswalks) -> None:
        self.spec, self.located, self.file, self.crosswalks = spec, located, file, crosswalks
        self.fmt: Literal["json", "xml"] = spec.source.format
        self.namespaces = dict(spec.source.namespaces)
        self.separator = "/" if self.fmt == "xml" else "."
        self.issues: list[LoadIssue] = []
        self.tables_used: dict[str, str] = {}
        self.sources: dict[str, str] = {}

    # -- reporting -----------------------------------------------------------------------------

    def line(self, spath: SpecPath) -> int | None:
        """The line of the rule at ``spath`` in the mapping file."""
        return self.located.line_of(spath)

    def issue(self, spath: SpecPath, message: str) -> None:
        key = dotted_key(spath)
        self.issues.append(LoadIssue(self.file, self.located.line_of(spath), key, message))

    # -- entry point ---------------------------------------------------------------------------

    def compile(self) -> CompiledObject:
        children = self.fields(self.spec.target, ServiceOrder, ("target",), "", "")
        system = self.spec.system
        source_system = CompiledValue(
            "source_system", "(mapping system)", ConstRead(system), line=self.line(("system",))
        )
        children = (source_system, *children)
        return CompiledObject("", children)

    # -- structure -----------------------------------------------------------------------------

    def fields(
        self,
        nodes: dict[str, Node],
        model: type[BaseModel],
        spath: SpecPath,
        target: str,
        source: str,
    ) -> tuple[CompiledNode, ...]:
        compiled: list[CompiledNode] = []
        for name, node in nodes.items():
            npath = (*spath, name)
            info = model.model_fields.get(name)
            if info is None:
                fields = [n for n in model.model_fields if n not in SET_BY_HUB]
                close = difflib.get_close_matches(name, fields, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                message = f"{model.__name__} has no field {name!r}; {hint}its fields are: {', '.join(fields)}"
                self.issue(npath, message)
                continue
            if model is ServiceOrder and name in SET_BY_HUB:
                self.issue(npath, f"{name} is set by the hub and cannot be mapped")
                continue
            built = self.field(name, node, info, npath, target, source)
            if built is not None:
                compiled.append(built)
        for name, info in model.model_fields.items():
            if (
                info.is_required()
                and name not in nodes
                and not (model is ServiceOrder and name in SET_BY_HUB)
            ):
                self.issue(spath, f"required canonical field {target}{name} is not mapped")
        return tuple(compiled)

    def field(
        self, name: str, node: Node, info: FieldInfo, spath: SpecPath, target: str, source: str
    ) -> CompiledNode | None:
        bare, _ = _unwrap(info.annotation)
        origin = get_origin(bare)
        where = f"{target}{name}"
        if origin is list:
            item_model, _ = _unwrap(get_args(bare)[0])
            if not isinstance(node, ListNode):
                self.issue(spath, f"{where} is a repeated group; map it with `each` and `fields`")
                return None
            return self.list_node(name, node, item_model, _max_items(info), spath, target, source)
        if origin is dict:
            if not isinstance(node, ObjectNode):
                self.issue(spath, f"{where} is a set of named values; map it with `fields`")
                return None
            return self.free_object(name, node, spath, target, source)
        if isinstance(bare, type) and issubclass(bare, BaseModel) and bare is not Money:
            if not isinstance(node, ObjectNode):
                self.issue(spath, f"{where} is a structure; map it with `fields`")
                return None
            when = self.condition(node.when, (*spath, "when"), source) if node.when else None
            children = self.fields(node.fields, bare, (*spath, "fields"), f"{where}.", source)
            return CompiledObject(name, children=children, when=when, line=self.line(spath))
        return self.leaf(name, node, bare, spath, where, source)

    def list_node(
        self,
        name: str,
        node: ListNode,
        model: Any,
        max_items: int,
        spath: SpecPath,
        target: str,
        source: str,
    ) -> CompiledNode | None:
        each = self.path(node.each, (*spath, "each"))
        when = self.condition(node.when, (*spath, "when"), source) if node.when else None
        item_source = f"{source}{node.each}[]{self.separator}"
        children = self.fields(node.fields, model, (*spath, "fields"), f"{target}{name}[].", item_source)
        if each is None:
            return None
        return CompiledList(
            name,
            children=children,
            each=each,
            separator=self.separator,
            max_items=max_items,
            when=when,
            line=self.line(spath),
        )

    def free_object(
        self, name: str, node: ObjectNode, spath: SpecPath, target: str, source: str
    ) -> CompiledNode:
        children: list[CompiledNode] = []
        for key, child in node.fields.items():
            cpath = (*spath, "fields", key)
            built = self.leaf(key, child, str, cpath, f"{target}{name}.{key}", source)
            if built is not None:
                children.append(built)
        when = self.condition(node.when, (*spath, "when"), source) if node.when else None
        return CompiledObject(name, children=tuple(children), when=when, line=self.line(spath))

    # -- leaves --------------------------------------------------------------------------------

    def leaf(
        self, name: str, node: Node, bare: Any, spath: SpecPath, where: str, source: str
    ) -> CompiledNode | None:
        if isinstance(node, FirstOfNode):
            candidates = [
                self.value(name, c, bare, (*spath, "first_of", i), where, source)
                for i, c in enumerate(node.first_of)
            ]
            if any(c is None for c in candidates):
                return None
            self.check_enum_value(bare, node.default, (*spath, "default"))
            self.sources[generic_target(where)] = " | ".join(c.source for c in candidates if c)
            ready = tuple(c for c in candidates if c is not None)
            return CompiledFirstOf(
                name,
                candidates=ready,
                default=node.default,
                required=node.required,
                line=self.line(spath),
                personal_data=node.personal_data.reason if node.personal_data else None,
            )
        if not isinstance(node, ValueNode):
            self.issue(spath, f"{where} is a single value; map it with path, const, expr or position")
            return None
        built = self.value(name, node, bare, spath, where, source)
        if built is not None:
            self.sources[generic_target(where)] = f"{source}{built.source}"
        return built

    def value(
        self, name: str, node: ValueNode, bare: Any, spath: SpecPath, where: str, source: str
    ) -> CompiledValue | None:
        count = len(self.issues)
        self.check_type(node, bare, spath, where)
        read, described = self.reader(name, node, spath, source)
        lookup = self.lookup(node.lookup, bare, (*spath, "lookup")) if node.lookup else None
        convert = self.converter(node, spath)
        qualifier, combine = (None, None) if convert is not None else self.combiner(node, spath, source)
        when = self.condition(node.when, (*spath, "when"), source) if node.when else None
        for key in ("const", "default"):
            self.check_enum_value(bare, getattr(node, key), (*spath, key))
        if len(self.issues) > count or read is None:
            return None
        return CompiledValue(
            name,
            source=described,
            read=read,
            transforms=tuple(node.transform),
            lookup=lookup,
            convert=convert,
            qualifier=qualifier,
            combine=combine,
            default=node.default,
            required=node.required,
            when=when,
            line=self.line(spath),
            value_type=f"{node.type} in minor units" if node.minor_units else node.type,
            personal_data=node.personal_data.reason if node.personal_data else None,
        )

    def check_type(self, node: ValueNode, bare: Any, spath: SpecPath, where: str) -> None:
        if bare is Any:  # `with` bindings feed an expression: any type is fine
            return
        if bare is Money:
            if node.type != "money":
                self.issue((*spath, "type"), f"{where} is an amount; use type: money with a currency")
            return
        if isinstance(bare, type) and issubclass(bare, Enum):
            allowed: tuple[str, ...] = ("string",)
        else:
            allowed = _TYPE_FOR.get(bare, ("string",))
        if node.type not in allowed:
            options = " or ".join(allowed)
            self.issue((*spath, "type"), f"{where} needs type {options}, not {node.type}")

    def check_enum_value(self, bare: Any, value: Any, spath: SpecPath) -> None:
        if value is None or not (isinstance(bare, type) and issubclass(bare, Enum)):
            return
        members = [m.value for m in bare]
        if value not in members:
            self.issue(
                spath,
                f"{value!r} is not {_article(bare.__name__)} {bare.__name__}; "
                f"expected one of {', '.join(members)}",
            )

    def path(self, text: str, spath: SpecPath) -> SourcePath | None:
        try:
            return compile_path(text, self.fmt, self.namespaces)
        except PathError as exc:
            self.issue(spath, f"{text!r}: {exc}")
            return None

    def reader(self, name: str, node: ValueNode, spath: SpecPath, source: str) -> tuple[Read | None, str]:
        if node.path is not None:
            path = self.path(node.path, (*spath, "path"))
            if path is None:
                return None, node.path
            return PathRead(path), node.path
        if node.expr is not None:
            bindings = []
            for key, sub in node.with_.items():
                built = self.value(f"{name}<{key}>", sub, Any, (*spath, "with", key), name, source)
                if built is not None:
                    bindings.append((key, built))
            try:
                expression = compile_expression(node.expr, frozenset(node.with_))
            except ExpressionError as exc:
                self.issue((*spath, "expr"), str(exc))
                return None, node.expr
            return ExprRead(expression, tuple(bindings)), f"expr {node.expr!r}"
        if node.position:
            return PositionRead(), "(position)"
        return ConstRead(node.const), "(constant)"

    def lookup(self, spec: LookupSpec, bare: Any, spath: SpecPath) -> CompiledLookup | None:
        crosswalk, file_issues = self.crosswalks.get(spec.table)
        if crosswalk is None and not file_issues:
            known = ", ".join(self.crosswalks.known()) or "none"
            self.issue((*spath, "table"), f"no crosswalk {spec.table}.csv; known crosswalks: {known}")
            return None
        self.report_once((spec.table, "", ""), file_issues)
        if crosswalk is None:
            return None
        if spec.optional_column and spec.column not in crosswalk.columns:
            # A shared crosswalk without this system's column yet: no code of it is known.
            self.tables_used[spec.table] = crosswalk.sha256
            return CompiledLookup(
                {}, crosswalk.file, spec.column, spec.on_missing, spec.default, {}, column_absent=True
            )
        table, table_issues = self.crosswalks.table(crosswalk, spec.column, spec.to)
        self.report_once((spec.table, spec.column, spec.to), table_issues)
        if table_issues and not table:
            self.issue(spath, f"lookup into {crosswalk.file} cannot be used (see the problems above)")
            return None
        self.tables_used[spec.table] = crosswalk.sha256
        if isinstance(bare, type) and issubclass(bare, Enum):
            self.check_table_results(crosswalk, spec, bare)
            self.check_enum_value(bare, spec.default, (*spath, "default"))
        rows: dict[str, tuple[int, dict[str, str]]] = {}
        for line, row in crosswalk.rows:
            code = row.get(spec.column, "")
            if code not in rows and table.get(code) == row.get(spec.to):  # the row the table took
                rows[code] = (line, row)
        return CompiledLookup(table, crosswalk.file, spec.column, spec.on_missing, spec.default, rows)

    def report_once(self, key: tuple[str, str, str], issues: list[LoadIssue]) -> None:
        # A crosswalk shared by several mapping files is reported once; the catalog fails either way.
        if key not in self.crosswalks.reported:
            self.crosswalks.reported.add(key)
            self.issues.extend(issues)

    def check_table_results(self, crosswalk: Crosswalk, spec: LookupSpec, enum: type[Enum]) -> None:
        members = {m.value for m in enum}
        for line, row in crosswalk.rows:
            value = row.get(spec.to, "")
            if row.get(spec.column) and value and value not in members:
                expected = ", ".join(sorted(members))
                message = (
                    f"{value!r} is not {_article(enum.__name__)} {enum.__name__}; expected one of {expected}"
                )
                issue = LoadIssue(crosswalk.file, line, spec.to, message)
                if issue not in self.issues:
                    self.issues.append(issue)

    def condition(self, spec: Condition, spath: SpecPath, source: str) -> CompiledCondition | None:
        holder = ValueNode.model_validate(
            {"path": spec.path} if spec.path is not None else {"expr": spec.expr, "with": spec.with_}
        )
        read, described = self.reader("when", holder, spath, source)
        if read is None:
            return None
        return CompiledCondition(read, _condition_test(spec), described)

    def converter(self, node: ValueNode, spath: SpecPath) -> Callable[[Any], Any] | None:
        """The conversion of a type that needs nothing but the value, or ``None``."""
        kind = node.type
        if kind == "string":
            return co.to_text if node.lookup is None else None
        if kind == "email":
            return lambda v: co.to_text(v).strip().lower()
        if kind == "int":
            return co.to_int
        if kind == "bool":
            return co.to_bool
        if kind == "decimal":
            sep, scale = node.decimal_separator, node.scale
            return lambda v: co.to_decimal(v, sep, scale)
        if kind == "datetime":
            return self.datetime_converter(node, spath)
        return None

    def datetime_converter(self, node: ValueNode, spath: SpecPath) -> Callable[[Any], Any]:
        tz = None
        if node.timezone is not None:
            try:
                tz = co.zone(node.timezone)
            except co.CoercionError as exc:
                self.issue((*spath, "timezone"), str(exc))
        fmt = node.format
        return lambda v: co.to_datetime(v, tz, fmt)

    def combiner(
        self, node: ValueNode, spath: SpecPath, source: str
    ) -> tuple[CompiledValue | None, Callable[[Any, Any], Any] | None]:
        """The conversion of a type that reads more of the payload: a region, a currency."""
        kind = node.type
        if kind == "phone":
            region = (
                self.value("region", node.region, str, (*spath, "region"), "region", source)
                if node.region
                else None
            )
            return region, co.to_phone
        if kind != "money":
            return None, None
        currency = (
            self.value("currency", node.currency, str, (*spath, "currency"), "currency", source)
            if node.currency is not None
            else None
        )
        minor, sep = node.minor_units, node.decimal_separator

        def combine(value: Any, code: Any) -> dict[str, Any]:
            if not isinstance(code, str):
                raise co.CoercionError("the amount has no currency (the `currency` value is missing)")
            amount = co.to_minor_money(value, code) if minor else co.to_decimal(value, sep)
            return money_value(amount, code)

        return currency, combine


def _condition_test(spec: Condition) -> Callable[[Any], bool]:
    fields = spec.model_fields_set
    if "equals" in fields:
        expected = spec.equals
        return lambda v: _same(v, expected)
    if "not_equals" in fields:
        unexpected = spec.not_equals
        return lambda v: not _same(v, unexpected)
    if "in_" in fields:
        options = list(spec.in_ or [])
        return lambda v: any(_same(v, o) for o in options)
    if "not_in" in fields:
        excluded = list(spec.not_in or [])
        return lambda v: not any(_same(v, o) for o in excluded)
    wanted = spec.exists if spec.exists is not None else True
    return lambda v: (v is not None and v != "") == wanted


def _same(value: Any, expected: Any) -> bool:
    if value is None or expected is None:
        return value is expected
    if isinstance(expected, str) or isinstance(value, str):
        return str(value).strip() == str(expected)
    return bool(value == expected)


def compile_mapping(spec: MappingFile, located: Located, file: str, crosswalks: Crosswalks) -> CompiledTree:
    """Compile ``spec``; the tree's ``issues`` list every problem found, with lines."""
    compiler = _Compiler(spec, located, file, crosswalks)
    root = compiler.compile()
    return CompiledTree(
        root if not compiler.issues else None,
        compiler.issues,
        compiler.tables_used,
        compiler.sources,
    )
