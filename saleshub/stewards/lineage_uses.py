"""The reverse of field lineage: which canonical fields, and how many recent orders, depend on a rule.

``crosswalk_uses`` answers it for a crosswalk (or one of its rows), ``source_path_uses`` for a
source path, before a steward edits them (``saleshub mappings impact`` answers after the edit):

* the fields: every rule of the deployed revision that looks a code up in the crosswalk (for a row:
  whose lookup column holds a code of that row), or that reads the path (also inside a repeated
  group, a ``first_of``, an expression's ``with``, a currency or region, a condition);
* the orders: the newest version of each of the last N updated orders is mapped again from its
  stored raw body, with the revision that produced it, by the tracing interpreter over those rules
  only; an order depends on the crosswalk when one of its lookups used a row of it (that row), and
  on the path when the path held a value one of the rules read.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection

from saleshub.errors import ConfigurationError, DataError, generic_target
from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.engine import CompiledMapping
from saleshub.mapping.nodes import (
    CompiledCondition,
    CompiledFirstOf,
    CompiledList,
    CompiledNode,
    CompiledObject,
    CompiledValue,
    ExprRead,
    PathRead,
    leaves,
)
from saleshub.mapping.tracing import FieldTrace, Step, trace
from saleshub.stewards.lineage import RevisionCatalogs, revision_of
from saleshub.store import lineage as reads
from saleshub.store import mapping_revisions

__all__ = ["FieldUse", "UsesReport", "crosswalk_uses", "source_path_uses"]

_INDEX = re.compile(r"\[\d*\]")


@dataclass(frozen=True, slots=True)
class FieldUse:
    """One rule that depends on the subject: which mapping, canonical field and file line."""

    mapping: str  # system/name
    target: str  # index-free canonical field, e.g. lines.product_code
    rule: str  # file:line
    how: str  # what the rule does with the subject, in words


@dataclass(slots=True)
class UsesReport:
    """Which fields depend on a crosswalk (row) or source path, and how many recent orders do."""

    subject: str
    revision: int | None
    fields: list[FieldUse]
    examined: int = 0
    depending: int = 0
    by_field: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0  # raw body purged, not a deployed revision, or no longer decodes

    def as_json(self) -> dict[str, object]:
        """The JSON form (``mappings uses --json``)."""
        return {
            "subject": self.subject,
            "revision": self.revision,
            "fields": [
                {"mapping": f.mapping, "field": f.target, "rule": f.rule, "how": f.how} for f in self.fields
            ],
            "orders_examined": self.examined,
            "orders_depending": self.depending,
            "orders_by_field": dict(self.by_field.most_common()),
            "orders_not_traceable": self.unreadable,
        }


# -- which rules ---------------------------------------------------------------------------------


def _parts(node: CompiledValue) -> Iterator[CompiledValue]:
    """``node`` and every value it is computed from (bindings, qualifier)."""
    yield node
    if isinstance(node.read, ExprRead):
        for _, binding in node.read.bindings:
            yield from _parts(binding)
    if node.qualifier is not None:
        yield from _parts(node.qualifier)


def _values(node: CompiledNode) -> Iterator[CompiledValue]:
    if isinstance(node, CompiledFirstOf):
        for candidate in node.candidates:
            yield from _parts(candidate)
    elif isinstance(node, CompiledValue):
        yield from _parts(node)


def _path_matches(path: str, source: str, written: str) -> bool:
    full = f"{source}{written}"
    return path in (written, full, full.replace("[]", ""), written.lstrip("$."), full.lstrip("$."))


def _row_codes(mapping: CompiledMapping, crosswalk: str, row: int | None) -> Callable[[CompiledValue], bool]:
    file = f"crosswalks/{crosswalk}.csv"

    def uses(value: CompiledValue) -> bool:
        lookup = value.lookup
        if lookup is None or lookup.file != file:
            return False
        return row is None or any(line == row for line, _ in lookup.rows.values())

    return uses


def _crosswalk_rule(crosswalk: str, row: int | None) -> Callable[[CompiledMapping, str, CompiledNode], str]:
    def how(mapping: CompiledMapping, source: str, node: CompiledNode) -> str:
        matches = _row_codes(mapping, crosswalk, row)
        for value in _values(node):
            if matches(value) and value.lookup is not None:
                return f"looks {value.source} up in column {value.lookup.column!r}"
        return ""

    return how


def _path_rule(path: str) -> Callable[[CompiledMapping, str, CompiledNode], str]:
    def how(mapping: CompiledMapping, source: str, node: CompiledNode) -> str:
        for value in _values(node):
            if isinstance(value.read, PathRead) and _path_matches(path, source, value.read.path.text):
                return f"reads {value.read.path.text}"
            if value.when is not None and _path_matches(path, source, value.when.describe):
                return f"only when {value.when.describe}"
        return ""

    return how


def _path_in_conditions(path: str, source: str, conditions: list[CompiledCondition]) -> bool:
    return any(_path_matches(path, source, c.describe) for c in conditions)


_Rule = Callable[[CompiledMapping, str, CompiledNode], str]


def _uses_in(mapping: CompiledMapping, rule: _Rule, path: str | None) -> list[FieldUse]:
    found = []
    name = f"{mapping.identity.system}/{mapping.identity.name}"
    for target, source, node, conditions in leaves(mapping.root.children, "", ""):
        how = rule(mapping, source, node)
        if not how and path is not None and _path_in_conditions(path, source, conditions):
            how = "a condition of its group reads it"
        if how:
            line = getattr(node, "line", None)
            rule_at = f"{mapping.identity.file}:{line}" if line else mapping.identity.file
            found.append(FieldUse(name, generic_target(target), rule_at, how))
    return found


def _prune(node: CompiledNode, keep: set[str], prefix: str) -> CompiledNode | None:
    """``node`` with only the fields in ``keep`` (and the groups around them)."""
    name = f"{prefix}{node.name}"
    if isinstance(node, CompiledList | CompiledObject):
        inner = f"{name}." if node.name else prefix
        children = tuple(c for c in (_prune(child, keep, inner) for child in node.children) if c is not None)
        return replace(node, children=children) if children else None
    return node if name in keep else None


# -- which orders ----------------------------------------------------------------------------------


_Hit = Callable[[FieldTrace, Step], bool]


def _count(
    conn: Connection,
    catalogs: RevisionCatalogs,
    report: UsesReport,
    rule: _Rule,
    path: str | None,
    hit: _Hit,
    last: int,
) -> None:
    pruned: dict[tuple[int, str, str], CompiledObject | None] = {}
    for row in reads.recent_order_bodies(conn, last):
        report.examined += 1
        number = revision_of(row.mapping)
        if row.raw_body is None or number is None:
            report.unreadable += 1
            continue
        catalog = catalogs.get(conn, number)
        adapter = catalogs.adapter(conn, number, row.source_system)
        try:
            document = adapter.decode(bytes(row.raw_body))
            name = adapter.mapping_name(document, adapter.classify(document))
        except DataError:
            report.unreadable += 1
            continue
        key = (number, row.source_system, name)
        if key not in pruned:
            pruned[key] = _pruned_root(catalog, row.source_system, name, rule, path)
        root = pruned[key]
        if root is None:
            continue
        _, _, traces = trace(root, document)
        fields = {generic_target(t.target) for t in traces for s in t.steps if hit(t, s)}
        if fields:
            report.depending += 1
            report.by_field.update(fields)


def _pruned_root(
    catalog: MappingCatalog, system: str, name: str, rule: _Rule, path: str | None
) -> CompiledObject | None:
    mapping = catalog.get(system, name)
    keep = {use.target for use in _uses_in(mapping, rule, path)}
    if not keep:
        return None
    root = _prune(mapping.root, keep, "")
    return root if isinstance(root, CompiledObject) else None


def _deployed(conn: Connection, catalogs: RevisionCatalogs) -> tuple[MappingCatalog, int]:
    current = mapping_revisions.deployed_revision(conn)
    if current is None:
        raise ConfigurationError("no mapping revision deployed yet (`saleshub mappings deploy`)")
    return catalogs.get(conn, current.revision), current.revision


def crosswalk_uses(
    conn: Connection, catalogs: RevisionCatalogs, crosswalk: str, row: int | None = None, *, last: int = 1000
) -> UsesReport:
    """Which fields look codes up in ``crosswalk`` (its row at file line ``row``), and how many orders."""
    name = crosswalk.removeprefix("crosswalks/").removesuffix(".csv")
    catalog, number = _deployed(conn, catalogs)
    subject = f"crosswalks/{name}.csv" + (f" line {row}" if row is not None else "")
    rule = _crosswalk_rule(name, row)
    report = UsesReport(subject, number, [use for m in catalog for use in _uses_in(m, rule, None)])
    if not report.fields:
        known = sorted(_crosswalk_files(catalog))
        if name not in known:
            used = ", ".join(known) or "none"
            raise ConfigurationError(f"no mapping of r{number} uses crosswalks/{name}.csv; used: {used}")
        return report
    file = f"crosswalks/{name}.csv"

    def hit(_: FieldTrace, step: Step) -> bool:
        return step.crosswalk == file and step.row is not None and (row is None or step.row == row)

    _count(conn, catalogs, report, rule, None, hit, last)
    return report


def _crosswalk_files(catalog: MappingCatalog) -> set[str]:
    names = set()
    for mapping in catalog:
        for _, _, node, _ in leaves(mapping.root.children, "", ""):
            for value in _values(node):
                if value.lookup is not None:
                    names.add(value.lookup.file.removeprefix("crosswalks/").removesuffix(".csv"))
    return names


def source_path_uses(
    conn: Connection, catalogs: RevisionCatalogs, path: str, *, last: int = 1000
) -> UsesReport:
    """Which fields read ``path`` (as written in a mapping, or with its group's path before it)."""
    catalog, number = _deployed(conn, catalogs)
    rule = _path_rule(path)
    report = UsesReport(path, number, [use for m in catalog for use in _uses_in(m, rule, path)])
    if not report.fields:
        return report
    wanted = _INDEX.sub("", path).lstrip("$.")

    def hit(_: FieldTrace, step: Step) -> bool:
        if step.kind != "read" or step.source is None or not step.has_value:
            return False
        concrete = _INDEX.sub("", step.source).lstrip("$.")
        return concrete == wanted or concrete.endswith(f".{wanted}") or concrete.endswith(f"/{wanted}")

    _count(conn, catalogs, report, rule, path, hit, last)
    return report
