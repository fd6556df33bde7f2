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
from dataclasses import dataclass, field

from canonical.model import is_personal_field
from saleshub.errors import LoadIssue, generic_target
from saleshub.mapping.engine import CompiledMapping
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

__all__ = [
    "FIX",
    "Acknowledged",
    "PersonalDataReview",
    "PersonalSource",
    "RuleRead",
    "acknowledged_targets",
    "review_personal_data",
    "rule_reads",
]

#: What a steward does about a leak; the last part of every leak's message.
FIX = "map it to a personal field, or mark the rule `personal_data: {allowed: true, reason: ...}`"


@dataclass(frozen=True, slots=True)
class RuleRead:
    """One source path a rule computes its field's value from."""

    path: str  # the whole path, e.g. order.items[].label (a repeated group's elements as [])
    written: str  # the path as written in the rule
    reason: str | None  # of the ``personal_data`` acknowledgement that covers this read


@dataclass(frozen=True, slots=True)
class PersonalSource:
    """Why a source path holds personal data: the rule that maps it into a personal field."""

    target: str
    file: str
    line: int | None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"mapped to {self.target} in {where}"


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """A rule that copies personal data into a non-personal field and says why (``personal_data``)."""

    file: str
    line: int | None
    target: str
    path: str  # as written in the rule
    reason: str


@dataclass
class PersonalDataReview:
    """What the check found over a set of mappings: the refused rules and the acknowledged ones."""

    leaks: list[LoadIssue] = field(default_factory=list)
    acknowledged: list[Acknowledged] = field(default_factory=list)


def _whole(path: SourcePath, prefix: str) -> str:
    return path.text.removeprefix("$.") if path.from_root else f"{prefix}{path.text}"


def _value_reads(node: CompiledValue, prefix: str, reason: str | None) -> Iterator[RuleRead]:
    reason = node.personal_data or reason  # the closest acknowledgement
    if isinstance(node.read, PathRead):
        yield RuleRead(_whole(node.read.path, prefix), node.read.path.text, reason)
    elif isinstance(node.read, ExprRead):
        for _, binding in node.read.bindings:
            yield from _value_reads(binding, prefix, reason)


def rule_reads(node: CompiledNode, prefix: str) -> list[RuleRead]:
    """The source paths a leaf rule computes its value from, under the source ``prefix``."""
    if isinstance(node, CompiledFirstOf):
        return [read for c in node.candidates for read in _value_reads(c, prefix, node.personal_data)]
    if isinstance(node, CompiledValue):
        return list(_value_reads(node, prefix, None))
    return []


def _rules(root: CompiledObject) -> Iterator[tuple[str, CompiledNode, list[RuleRead]]]:
    for target, prefix, node, _ in leaves(root.children, "", ""):
        yield generic_target(target), node, rule_reads(node, prefix)


def _personal_sources(compiled: list[tuple[str, CompiledObject]]) -> dict[str, PersonalSource]:
    personal: dict[str, PersonalSource] = {}
    for file, root in compiled:
        for target, node, reads in _rules(root):
            if is_personal_field(target):
                for read in reads:
                    personal.setdefault(read.path, PersonalSource(target, file, getattr(node, "line", None)))
    return personal


def _review_system(compiled: list[tuple[str, CompiledObject]], review: PersonalDataReview) -> None:
    personal = _personal_sources(compiled)
    for file, root in compiled:
        for target, node, reads in _rules(root):
            if is_personal_field(target):
                continue
            line = getattr(node, "line", None)
            for read in reads:
                source = personal.get(read.path)
                if source is not None:
                    why = str(source)
                elif is_personal_path(read.written):
                    why = "its name says it holds personal data"
                else:
                    continue
                if read.reason is not None:
                    review.acknowledged.append(Acknowledged(file, line, target, read.written, read.reason))
                    continue
                message = f"reads personal data from {read.written} ({why}), but is not a personal-data field"
                review.leaks.append(LoadIssue(file, line, target, f"{message}; {FIX}"))


def review_personal_data(mappings: Iterable[CompiledMapping]) -> PersonalDataReview:
    """Every rule of ``mappings`` that copies personal data into a non-personal field.

    Each source system's mappings are checked together: a path one of them maps into a personal
    field is personal for all of them.
    """
    by_system: dict[str, list[tuple[str, CompiledObject]]] = {}
    for mapping in mappings:
        by_system.setdefault(mapping.identity.system, []).append((mapping.identity.file, mapping.root))
    review = PersonalDataReview()
    for system in sorted(by_system):
        _review_system(by_system[system], review)
    return review


_SEALED: dict[str, frozenset[str]] = {}


def acknowledged_targets(mapping: CompiledMapping) -> frozenset[str]:
    """The non-personal fields ``mapping`` fills with personal data by acknowledgement
    (``system_metadata.loyalty_card``): the store seals them at rest like the personal fields.

    Computed once per mapping content (a deployed revision never changes).
    """
    key = mapping.identity.content_hash
    found = _SEALED.get(key)
    if found is None:
        review = review_personal_data([mapping])
        found = _SEALED[key] = frozenset(item.target for item in review.acknowledged)
    return found
