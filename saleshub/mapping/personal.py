"""Where personal data flows through a system's mappings: never silently into a non-personal field.

The canonical model says which of its fields hold personal data (``canonical.PERSONAL_DATA_FIELDS``).
A source path holds personal data when

* a rule of one of the system's mappings maps it into a personal canonical field (the customer's
  names, e-mail, phone, reference, the service address lines, the notes), or
* the name it ends at is one the masking of logs knows as personal (``firstName``, ``Telefon``,
  ``loyaltyCard`` …: ``saleshub.platform.masking.PERSONAL_KEYS``).

A rule that computes a non-personal canonical field from such a path is an error, reported with the
rule's file and line, the field, the path and the fix, unless the rule says
``personal_data: {allowed: true, reason: ...}`` (on the field's rule, a ``first_of`` candidate or
an expression's ``with`` value).

What a field is computed from is what the compiled nodes read for its value: the path of a value
rule, every candidate of a ``first_of``, every ``with`` value of an expression (with their
transforms, crosswalk lookups and defaults). Conditions (``when``), an amount's currency and a
phone number's region only steer or qualify a value and do not carry their own into it, so they
are not followed, and they do not make a path personal either.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from canonical.model import is_personal_field
from saleshub.errors import LoadIssue, generic_target
from saleshub.mapping.nodes import (
    CompiledFirstOf,
    CompiledNode,
    CompiledObject,
    CompiledValue,
    ExprRead,
    PathRead,
    leaves,
)
from saleshub.mapping.paths import SourcePath
from saleshub.platform.masking import is_personal_path

__all__ = ["FIX", "PersonalSource", "RuleRead", "personal_data_leaks", "rule_reads"]

#: What a steward does about a leak; the last part of every leak's message.
FIX = "map it to a personal field, or mark the rule `personal_data: {allowed: true, reason: ...}`"


@dataclass(frozen=True, slots=True)
class RuleRead:
    """One source path a rule computes its field's value from."""

    path: str  # the whole path, e.g. order.items[].label (a repeated group's elements as [])
    written: str  # the path as written in the rule
    acknowledged: bool  # a ``personal_data`` acknowledgement covers this read


@dataclass(frozen=True, slots=True)
class PersonalSource:
    """Why a source path holds personal data: the rule that maps it into a personal field."""

    target: str
    file: str
    line: int | None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"mapped to {self.target} in {where}"


def _whole(path: SourcePath, prefix: str) -> str:
    return path.text.removeprefix("$.") if path.from_root else f"{prefix}{path.text}"


def _value_reads(node: CompiledValue, prefix: str, acknowledged: bool) -> Iterator[RuleRead]:
    acknowledged = acknowledged or node.personal_data is not None
    if isinstance(node.read, PathRead):
        yield RuleRead(_whole(node.read.path, prefix), node.read.path.text, acknowledged)
    elif isinstance(node.read, ExprRead):
        for _, binding in node.read.bindings:
            yield from _value_reads(binding, prefix, acknowledged)


def rule_reads(node: CompiledNode, prefix: str) -> list[RuleRead]:
    """The source paths a leaf rule computes its value from, under the source ``prefix``."""
    if isinstance(node, CompiledFirstOf):
        acknowledged = node.personal_data is not None
        return [read for c in node.candidates for read in _value_reads(c, prefix, acknowledged)]
    if isinstance(node, CompiledValue):
        return list(_value_reads(node, prefix, False))
    return []


def _rules(root: CompiledObject) -> Iterator[tuple[str, CompiledNode, list[RuleRead]]]:
    for target, prefix, node, _ in leaves(root.children, "", ""):
        yield generic_target(target), node, rule_reads(node, prefix)


def personal_data_leaks(mappings: Iterable[tuple[str, CompiledObject]]) -> list[LoadIssue]:
    """Every unacknowledged rule that copies personal data into a non-personal field.

    ``mappings`` are the (file, compiled root) of all the mappings of one source system: a path
    one of them maps into a personal field is personal for all of them.
    """
    compiled = list(mappings)
    personal: dict[str, PersonalSource] = {}
    for file, root in compiled:
        for target, node, reads in _rules(root):
            if is_personal_field(target):
                for read in reads:
                    personal.setdefault(read.path, PersonalSource(target, file, getattr(node, "line", None)))
    issues: list[LoadIssue] = []
    for file, root in compiled:
        for target, node, reads in _rules(root):
            if is_personal_field(target):
                continue
            for read in reads:
                if read.acknowledged:
                    continue
                source = personal.get(read.path)
                if source is not None:
                    why = str(source)
                elif is_personal_path(read.written):
                    why = "its name says it holds personal data"
                else:
                    continue
                message = f"reads personal data from {read.written} ({why}), but is not a personal-data field"
                message = f"{message}; {FIX}"
                issues.append(LoadIssue(file, getattr(node, "line", None), target, message))
    return issues
