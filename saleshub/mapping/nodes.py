"""Compiled mapping nodes: the checked plan the compiler builds from a mapping file.

The nodes are plain data. ``saleshub.mapping.codegen`` turns a tree of them into one Python function
per mapping, which is what maps payloads. Their meaning, which the generated code keeps exactly:

* a node never raises for bad data: it records a ``FieldError`` in the ``Run`` and yields ``None``,
  so that one payload's every problem is reported together;
* ``None`` means "absent": objects leave absent fields out so the canonical model's defaults apply,
  and an object with no fields is itself absent;
* a value is read, then its text transforms run, then its lookup, then its conversion; an absent
  value takes its default, or is reported when required;
* a repeated group maps at most as many elements as its canonical field may hold.

Every node also keeps the line of its rule in the mapping file (``line``) and every lookup the
crosswalk rows its codes come from (``rows``): nothing the generated code reads, what a trace of
one payload (``saleshub.mapping.tracing``) shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from canonical.model import is_personal_field
from saleshub.errors import FieldError
from saleshub.mapping.expressions import CompiledExpression
from saleshub.mapping.paths import SourcePath

__all__ = [
    "CompiledCondition",
    "CompiledFirstOf",
    "CompiledList",
    "CompiledLookup",
    "CompiledNode",
    "CompiledObject",
    "CompiledValue",
    "ConstRead",
    "ExprRead",
    "PathRead",
    "PositionRead",
    "Read",
    "Run",
    "leaves",
    "money_value",
]


class Run:
    """The state of mapping one payload: the errors found so far."""

    __slots__ = ("errors",)

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, target: str, source: str, rule: str, value: Any = None, has_value: bool = True) -> None:
        """Record one field error and carry on."""
        self.errors.append(FieldError(target, source, rule, value, has_value, is_personal_field(target)))


@dataclass(frozen=True, slots=True)
class PathRead:
    """Read the value at a source path."""

    path: SourcePath


@dataclass(frozen=True, slots=True)
class ExprRead:
    """Evaluate an expression over the values of the node's ``with`` bindings."""

    expression: CompiledExpression
    bindings: tuple[tuple[str, CompiledValue], ...]


@dataclass(frozen=True, slots=True)
class PositionRead:
    """The 1-based position of the current element of a repeated group (1 outside groups)."""


@dataclass(frozen=True, slots=True)
class ConstRead:
    """A constant from the mapping file."""

    value: Any


Read = PathRead | ExprRead | PositionRead | ConstRead


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """A compiled ``when``: read a value, then test it."""

    read: Read
    test: Callable[[Any], bool]
    describe: str


class CompiledLookup:
    """A crosswalk lookup with its missing-key policy (``error``, ``default`` or ``pass_through``).

    ``rows`` gives, for each code of ``table``, the file line and the cells of the row it comes from.
    """

    __slots__ = ("column", "column_absent", "default", "file", "policy", "rows", "table")

    def __init__(
        self,
        table: dict[str, str],
        file: str,
        column: str,
        policy: str,
        default: str | None,
        rows: dict[str, tuple[int, dict[str, str]]] | None = None,
        *,
        column_absent: bool = False,
    ) -> None:
        self.table, self.file, self.column = table, file, column
        self.policy, self.default = policy, default
        self.rows = rows if rows is not None else {}
        #: The file has no such column yet (a lookup with ``optional_column``).
        self.column_absent = column_absent

    @property
    def problem(self) -> str:
        """Why a code missing from the table is an error (``policy == "error"``)."""
        if self.column_absent:
            return f"{self.file} has no column {self.column!r} yet; add the column and a row for this code"
        return f"code is not in {self.file} (column {self.column!r}); add a row for it"


@dataclass(frozen=True, slots=True)
class CompiledNode:
    """A node of a compiled mapping; ``name`` is its canonical field (or free key)."""

    name: str


@dataclass(frozen=True, slots=True)
class CompiledValue(CompiledNode):
    """A leaf: read, transform, translate, convert; default or complain when absent.

    ``convert`` needs only the value. ``combine`` needs the value and a ``qualifier`` read from the
    same payload (an amount's currency, a phone number's region); it gets ``None`` for an absent one.
    """

    source: str
    read: Read
    transforms: tuple[str, ...] = ()
    lookup: CompiledLookup | None = None
    convert: Callable[[Any], Any] | None = None
    qualifier: CompiledValue | None = None
    combine: Callable[[Any, Any], Any] | None = None
    default: Any = None
    required: bool = False
    when: CompiledCondition | None = None
    line: int | None = None  # of the rule in the mapping file
    value_type: str = "string"  # the file's ``type`` (``money in minor units`` for cents), for traces
    personal_data: str | None = None  # the steward's reason for copying personal data (``personal_data``)


@dataclass(frozen=True, slots=True)
class CompiledFirstOf(CompiledNode):
    """Candidates in order; the first that yields a value wins."""

    candidates: tuple[CompiledValue, ...]
    default: Any
    required: bool
    line: int | None = None
    personal_data: str | None = None  # the steward's reason for copying personal data (``personal_data``)


@dataclass(frozen=True, slots=True)
class CompiledObject(CompiledNode):
    """A nested structure; absent when its condition fails or none of its fields has a value."""

    children: tuple[CompiledNode, ...]
    when: CompiledCondition | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class CompiledList(CompiledNode):
    """A repeated group: one object per element that ``each`` selects, at most ``max_items``.

    More elements than the canonical field allows are reported as one error and only the first
    ``max_items`` are mapped: a body of 200,000 empty items costs no more than one of 500.
    """

    each: SourcePath
    children: tuple[CompiledNode, ...]
    separator: str
    max_items: int
    when: CompiledCondition | None = None
    line: int | None = None


def _around(group: CompiledList | CompiledObject) -> list[CompiledCondition]:
    return [group.when] if group.when is not None else []


def leaves(
    children: tuple[CompiledNode, ...], prefix: str, source: str
) -> Iterator[tuple[str, str, CompiledNode, list[CompiledCondition]]]:
    """(field, source prefix, leaf node, conditions of the groups around it) under ``children``.

    The field is index-free (``lines.product_code``); the source prefix is what the leaf's relative
    paths are read under (``order.items[].`` inside a repeated group).
    """
    for child in children:
        name = f"{prefix}{child.name}"
        if isinstance(child, CompiledList):
            inner = f"{source}{child.each.text}[]{child.separator}"
            for found in leaves(child.children, f"{name}.", inner):
                yield found[0], found[1], found[2], [*_around(child), *found[3]]
        elif isinstance(child, CompiledObject):
            for found in leaves(child.children, f"{name}." if child.name else prefix, source):
                yield found[0], found[1], found[2], [*_around(child), *found[3]]
        else:
            yield name, source, child, []


def money_value(amount: Decimal, currency: str) -> dict[str, Any]:
    """The canonical input form of a ``Money`` value."""
    return {"amount": amount, "currency": currency}
