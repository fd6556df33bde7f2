"""Compiled mapping nodes: what the compiler builds from a mapping file and the engine runs.

Each node turns the current source item into a piece of the canonical order's input dictionary.
Nodes never raise for bad data: they record a ``FieldError`` in the ``Run`` and yield ``None``, so
that one payload's every problem is reported together. ``None`` means "absent": object nodes leave
absent fields out so the canonical model's defaults apply, and an object with no fields is absent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from typing_extensions import override

from saleshub.errors import FieldError
from saleshub.mapping.coercions import CoercionError, to_text
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
    "Run",
    "Scope",
]


class Run:
    """The state of mapping one payload: the document root and the errors found so far."""

    __slots__ = ("errors", "root")

    def __init__(self, root: Any) -> None:
        self.root = root
        self.errors: list[FieldError] = []

    def fail(self, target: str, source: str, rule: str, value: Any = None, has_value: bool = True) -> None:
        """Record one field error and carry on."""
        self.errors.append(FieldError(target, source, rule, value, has_value))


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a node runs: the current item, its 1-based position, and the error-message prefixes."""

    item: Any
    position: int
    target: str
    source: str

    def enter(self, name: str) -> Scope:
        """The scope of a nested object field (same item)."""
        return Scope(self.item, self.position, f"{self.target}{name}.", self.source)


class CompiledNode(ABC):
    """A node of a compiled mapping."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def produce(self, run: Run, scope: Scope) -> Any:
        """This node's value for the current scope, or ``None`` when absent."""


class CompiledCondition:
    """A compiled ``when`` test."""

    __slots__ = ("describe", "read", "test")

    def __init__(self, read: Callable[[Run, Scope], Any], test: Callable[[Any], bool], describe: str) -> None:
        self.read, self.test, self.describe = read, test, describe

    def holds(self, run: Run, scope: Scope) -> bool:
        """Whether the condition is true for this scope."""
        return self.test(self.read(run, scope))


class CompiledLookup:
    """A crosswalk lookup with its missing-key policy."""

    __slots__ = ("column", "default", "file", "policy", "table")

    def __init__(
        self, table: dict[str, str], file: str, column: str, policy: str, default: str | None
    ) -> None:
        self.table, self.file, self.column = table, file, column
        self.policy, self.default = policy, default

    def translate(self, code: str) -> tuple[str | None, str | None]:
        """The result for ``code`` and, when the policy says it is an error, the reason."""
        found = self.table.get(code)
        if found is not None:
            return found, None
        if self.policy == "pass_through":
            return code, None
        if self.policy == "default":
            return self.default, None
        return None, f"code is not in {self.file} (column {self.column!r}); add a row for it"


Reader = Callable[[Run, Scope], Any]
Coercer = Callable[[Any, Run, Scope], Any]


class CompiledValue(CompiledNode):
    """A leaf: read, transform, translate, coerce; default or complain when absent."""

    __slots__ = (
        "coerce",
        "convert",
        "default",
        "lookup",
        "path",
        "read",
        "required",
        "source",
        "transforms",
        "when",
    )

    def __init__(
        self,
        name: str,
        source: str,
        read: Reader,
        *,
        transforms: tuple[Callable[[str], str], ...] = (),
        lookup: CompiledLookup | None = None,
        coerce: Coercer | None = None,
        convert: Callable[[Any], Any] | None = None,
        default: Any = None,
        required: bool = False,
        when: CompiledCondition | None = None,
        path: SourcePath | None = None,
    ) -> None:
        super().__init__(name)
        # ``path`` (when the value is read from one) and ``convert`` (a conversion that needs no
        # context) let the hot loop below skip a layer of closures; ``read``/``coerce`` are general.
        self.source, self.read, self.path = source, read, path
        self.transforms, self.lookup = transforms, lookup
        self.coerce, self.convert = coerce, convert
        self.default, self.required, self.when = default, required, when

    def _source(self, scope: Scope) -> str:
        return f"{scope.source}{self.source}"

    @override
    def produce(self, run: Run, scope: Scope) -> Any:
        if self.when is not None and not self.when.holds(run, scope):
            return None
        try:
            path = self.path
            raw = path.scalar(scope.item, run.root) if path is not None else self.read(run, scope)
        except (ValueError, TypeError, ArithmeticError) as exc:
            run.fail(scope.target + self.name, self._source(scope), f"cannot be read: {exc}", has_value=False)
            return None
        if raw is None or (type(raw) is str and not raw.strip()):
            return self._absent(run, scope)
        value = raw
        try:
            if self.transforms:
                value = to_text(value)
                for transform in self.transforms:
                    value = transform(value)
            if self.lookup is not None:
                value, problem = self.lookup.translate(to_text(value))
                if problem is not None:
                    run.fail(scope.target + self.name, self._source(scope), problem, raw)
                    return None
            if value is not None:
                if self.convert is not None:
                    value = self.convert(value)
                elif self.coerce is not None:
                    value = self.coerce(value, run, scope)
        except CoercionError as exc:
            run.fail(scope.target + self.name, self._source(scope), str(exc), raw)
            return None
        except (ValueError, TypeError, ArithmeticError) as exc:
            rule = f"cannot be converted ({type(exc).__name__}: {exc})"
            run.fail(scope.target + self.name, self._source(scope), rule, raw)
            return None
        return value

    def _absent(self, run: Run, scope: Scope) -> Any:
        if self.default is not None:
            return self.default
        if self.required:
            run.fail(
                scope.target + self.name, self._source(scope), "required value is missing", has_value=False
            )
        return None


class CompiledFirstOf(CompiledNode):
    """Candidates in order; the first that yields a value wins."""

    __slots__ = ("candidates", "default", "required")

    def __init__(
        self, name: str, candidates: tuple[CompiledValue, ...], default: Any, required: bool
    ) -> None:
        super().__init__(name)
        self.candidates, self.default, self.required = candidates, default, required

    @override
    def produce(self, run: Run, scope: Scope) -> Any:
        for candidate in self.candidates:
            value = candidate.produce(run, scope)
            if value is not None:
                return value
        if self.default is None and self.required:
            sources = " | ".join(c.source for c in self.candidates)
            run.fail(scope.target + self.name, sources, "no candidate yields a value", has_value=False)
        return self.default


class CompiledObject(CompiledNode):
    """A nested structure; absent when its condition fails or none of its fields has a value."""

    __slots__ = ("children", "when")

    def __init__(
        self, name: str, children: tuple[CompiledNode, ...], when: CompiledCondition | None = None
    ) -> None:
        super().__init__(name)
        self.children, self.when = children, when

    @override
    def produce(self, run: Run, scope: Scope) -> dict[str, Any] | None:
        if self.when is not None and not self.when.holds(run, scope):
            return None
        inner = scope.enter(self.name) if self.name else scope
        out: dict[str, Any] = {}
        for child in self.children:
            value = child.produce(run, inner)
            if value is not None:
                out[child.name] = value
        return out or None


class CompiledList(CompiledNode):
    """A repeated group: one object per element that ``each`` selects."""

    __slots__ = ("children", "each", "separator", "when")

    def __init__(
        self,
        name: str,
        each: SourcePath,
        children: tuple[CompiledNode, ...],
        separator: str,
        when: CompiledCondition | None = None,
    ) -> None:
        super().__init__(name)
        self.each, self.children, self.separator, self.when = each, children, separator, when

    @override
    def produce(self, run: Run, scope: Scope) -> list[dict[str, Any]] | None:
        if self.when is not None and not self.when.holds(run, scope):
            return None
        elements = self.each.items(scope.item, run.root)
        if elements is None:
            run.fail(
                f"{scope.target}{self.name}",
                scope.source + self.each.text,
                "expected a list",
                has_value=False,
            )
            return None
        results: list[dict[str, Any]] = []
        for index, element in enumerate(elements):
            inner = Scope(
                element,
                index + 1,
                f"{scope.target}{self.name}[{index}].",
                f"{scope.source}{self.each.text}[{index}]{self.separator}",
            )
            out: dict[str, Any] = {}
            for child in self.children:
                value = child.produce(run, inner)
                if value is not None:
                    out[child.name] = value
            results.append(out)
        return results


def money_value(amount: Decimal, currency: str) -> dict[str, Any]:
    """The canonical input form of a ``Money`` value."""
    return {"amount": amount, "currency": currency}


def expression_reader(
    expression: CompiledExpression, bindings: tuple[tuple[str, CompiledValue], ...]
) -> Reader:
    """A reader that evaluates ``expression`` with the values of its ``with`` nodes."""

    def read(run: Run, scope: Scope) -> Any:
        env = {key: node.produce(run, scope) for key, node in bindings}
        return expression.evaluate(env)

    return read
