"""How a canonical field is produced by a compiled mapping, for ``saleshub mappings explain``.

``explain(mapping, field)`` walks the compiled nodes (``saleshub.mapping.nodes``) and says, for the
field (or every field), where its value is read, the transforms, the crosswalk lookup and its
missing-code policy, the conversion type, the default, whether it is required and its condition,
with the code the generator writes for it (``saleshub.mapping.codegen.node_source``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from saleshub.errors import ConfigurationError, generic_target
from saleshub.mapping.codegen import node_source
from saleshub.mapping.engine import CompiledMapping
from saleshub.mapping.nodes import (
    CompiledFirstOf,
    CompiledList,
    CompiledNode,
    CompiledObject,
    CompiledValue,
    ConstRead,
    ExprRead,
    PositionRead,
)

__all__ = ["FieldExplanation", "explain", "field_nodes"]


@dataclass(frozen=True, slots=True)
class FieldExplanation:
    """How one canonical field is produced (each part in words; empty when it does not apply)."""

    target: str
    reads: str
    transforms: str = ""
    lookup: str = ""
    type: str = ""
    default: str = ""
    required: bool = False
    when: str = ""
    code: str = ""


def field_nodes(root: CompiledObject) -> dict[str, CompiledNode]:
    """Every node under ``root`` by its index-free canonical name (``lines.product_code``)."""
    found: dict[str, CompiledNode] = {}

    def walk(children: tuple[CompiledNode, ...], prefix: str) -> None:
        for child in children:
            name = f"{prefix}{child.name}"
            found[name] = child
            if isinstance(child, CompiledObject | CompiledList):
                walk(child.children, f"{name}.")

    walk(root.children, "")
    return found


def _type_of(node: CompiledValue) -> str:
    if node.convert is None and node.combine is None:
        return "text (as read)"
    return node.kind or "converted"


def _value(target: str, node: CompiledValue) -> FieldExplanation:
    read = node.read
    if isinstance(read, ConstRead):
        reads = f"the constant {read.value!r}"
    elif isinstance(read, PositionRead):
        reads = "the position of the element in its group (from 1)"
    elif isinstance(read, ExprRead):
        names = ", ".join(f"{key} = {value.source}" for key, value in read.bindings)
        reads = f"the expression {node.source} with {names}"
    else:
        reads = node.source
    lookup = ""
    if node.lookup is not None:
        policy = {
            "error": "a missing code is an error",
            "default": f"a missing code gives {node.lookup.default!r}",
            "pass_through": "a missing code is kept as it is",
        }[node.lookup.policy]
        lookup = f"{node.lookup.file} column {node.lookup.column!r} ({policy})"
    qualifier = f" with {node.qualifier.source}" if node.qualifier is not None else ""
    return FieldExplanation(
        target,
        reads,
        transforms=", ".join(node.transforms),
        lookup=lookup,
        type=_type_of(node) + qualifier,
        default="" if node.default is None else repr(node.default),
        required=node.required,
        when=node.when.describe if node.when is not None else "",
    )


def _explain(target: str, node: CompiledNode) -> FieldExplanation:
    if isinstance(node, CompiledValue):
        found = _value(target, node)
    elif isinstance(node, CompiledFirstOf):
        found = FieldExplanation(
            target,
            "the first of: " + " | ".join(c.source for c in node.candidates),
            default="" if node.default is None else repr(node.default),
            required=node.required,
        )
    elif isinstance(node, CompiledList):
        found = FieldExplanation(target, f"one entry per element of {node.each.text}", type="list")
    else:
        found = FieldExplanation(target, "a group of the fields below", type="object")
    return FieldExplanation(**{**_fields(found), "code": node_source(node)})


def _fields(found: FieldExplanation) -> dict[str, Any]:
    return {name: getattr(found, name) for name in FieldExplanation.__slots__}


def explain(mapping: CompiledMapping, field: str | None = None) -> list[FieldExplanation]:
    """How ``field`` (``lines[0].unit_price``, ``lines.unit_price`` …), or every field, is produced."""
    nodes = field_nodes(mapping.root)
    if field is None:
        return [_explain(target, node) for target, node in nodes.items()]
    wanted = generic_target(field)
    if wanted not in nodes:
        close = difflib.get_close_matches(wanted, list(nodes), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigurationError(f"{mapping.identity.label} does not map {field!r}{hint}")
    return [_explain(wanted, nodes[wanted])]
