"""Run a compiled mapping over decoded payloads and validate the result as a canonical order.

``CompiledMapping.apply`` is the hot path: it runs the function generated from the compiled nodes
(``saleshub.mapping.codegen``), then validates the produced dictionary with the canonical model.
Problems from both stages are merged into one ``MappingError``: a field that already failed to map
is not reported a second time as "missing" by validation, and each validation error is traced back
to the source path the mapping reads it from. At most ``MAX_FIELD_ERRORS`` are listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from canonical.model import ServiceOrder, is_personal_field
from saleshub.errors import FieldError, MappingError, generic_target
from saleshub.mapping.codegen import generate
from saleshub.mapping.nodes import CompiledObject

__all__ = ["MAX_FIELD_ERRORS", "CompiledMapping", "MappedOrder", "MappingIdentity"]

#: At most this many field errors are listed for one payload; one more entry counts the rest, so a
#: body with thousands of broken fields yields an error record of bounded size.
MAX_FIELD_ERRORS = 100


@dataclass(frozen=True, slots=True)
class MappingIdentity:
    """Which mapping produced an order: system, name, the steward's revision and the content hash.

    ``deployment`` is the number of the deployed mapping revision the mapping came from (``None``
    for files read from a directory).
    """

    system: str
    name: str
    revision: str
    content_hash: str
    file: str
    deployment: int | None = None

    @property
    def label(self) -> str:
        """Short human form, e.g. ``pyxis/order@2026.11.1#3fa2c1d09b7e/r4`` (deployed revision 4)."""
        base = f"{self.system}/{self.name}@{self.revision}#{self.content_hash[:12]}"
        return base if self.deployment is None else f"{base}/r{self.deployment}"


@dataclass(frozen=True, slots=True)
class MappedOrder:
    """A canonical order and the mapping that produced it."""

    order: ServiceOrder
    mapping: MappingIdentity


def _target_of(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(order)"


def _enclosing(target: str) -> set[str]:
    """The fields ``target`` lies inside: ``lines[3].unit_price`` -> ``lines``, ``lines[3]``."""
    return {target[:i] for i, char in enumerate(target) if char in ".["}


class _Failed:
    """The targets that already failed to map, to tell whether a validation error repeats one.

    A target is related to a failed one when it is the same field, contains it or lies inside it.
    Sets of the enclosing fields make each test linear in the target's length, so a payload with
    thousands of failed fields and thousands of validation errors costs thousands of steps, not
    millions.
    """

    def __init__(self, targets: set[str]) -> None:
        self.targets = targets
        self.enclosing: set[str] = set().union(*map(_enclosing, targets)) if targets else set()

    def related(self, target: str) -> bool:
        """Whether ``target`` is, contains or lies inside a field that already failed to map."""
        if target in self.targets or target in self.enclosing:
            return True
        return not self.targets.isdisjoint(_enclosing(target))


def _bounded(errors: list[FieldError]) -> list[FieldError]:
    if len(errors) <= MAX_FIELD_ERRORS:
        return errors
    more = len(errors) - MAX_FIELD_ERRORS
    summary = FieldError(
        "(order)", "(whole payload)", f"{more} more field errors are not listed", None, False
    )
    return [*errors[:MAX_FIELD_ERRORS], summary]


class CompiledMapping:
    """A mapping file compiled once and applied to many payloads."""

    __slots__ = ("_produce", "_sources", "format", "generated_source", "identity", "root")

    def __init__(
        self,
        identity: MappingIdentity,
        fmt: Literal["json", "xml"],
        root: CompiledObject,
        sources: dict[str, str],
    ) -> None:
        self.identity, self.format, self._sources = identity, fmt, sources
        #: The compiled nodes the generated function was made from (``saleshub.mapping.nodes``).
        self.root = root
        generated = generate(root, identity.label)
        self._produce = generated.produce
        #: The Python source generated from the mapping (see ``saleshub.mapping.codegen``).
        self.generated_source = generated.source

    def produce(self, document: Any) -> tuple[dict[str, Any], list[FieldError]]:
        """The canonical input dictionary for ``document`` and the mapping-stage errors."""
        return self._produce(document)

    def apply(self, document: Any) -> MappedOrder:
        """Map and validate; raises ``MappingError`` listing every problem of this payload."""
        data, errors = self.produce(document)
        try:
            order = ServiceOrder.model_validate(data)
        except ValidationError as exc:
            errors = errors + self._validation_errors(exc, _Failed({e.target for e in errors}))
        else:
            if not errors:
                return MappedOrder(order, self.identity)
        raise MappingError(self.identity.system, self.identity.label, _bounded(errors))

    def _source_for(self, target: str) -> str:
        generic = generic_target(target)
        source = self._sources.get(generic)
        while source is None and "." in generic:
            generic = generic.rsplit(".", 1)[0]
            source = self._sources.get(generic)
        if source is None:
            return "(not mapped)" if generic in ServiceOrder.model_fields else "(whole structure)"
        indices = [part for part in target.replace("]", "[").split("[") if part.isdigit()]
        first = 1 if self.format == "xml" else 0  # XPath counts positions from 1
        for index in indices:
            source = source.replace("[]", f"[{int(index) + first}]", 1)
        return source

    def _validation_errors(self, exc: ValidationError, failed: _Failed) -> list[FieldError]:
        found: list[FieldError] = []
        for error in exc.errors(include_url=False):
            target = _target_of(tuple(error["loc"]))
            if failed.related(target):
                continue
            rule = error["msg"].removeprefix("Value error, ")
            has_value = error["type"] != "missing"
            value = error.get("input") if has_value else None
            if isinstance(value, dict | list):
                has_value, value = False, None
            found.append(
                FieldError(
                    target, self._source_for(target), rule, value, has_value, is_personal_field(target)
                )
            )
        return found
