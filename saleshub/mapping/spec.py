"""The mapping-file format: a typed, versioned DSL that data stewards write in YAML.

A mapping file says how one source system's payload becomes a canonical ``ServiceOrder``. Its
``target`` is a tree that mirrors the canonical model; each node is one of four kinds, told apart by
the key that only that kind has (the discriminator):

* **value** (``path`` | ``const`` | ``expr`` | ``position``): one value, with optional ``transform``,
  ``lookup`` into a crosswalk, ``type`` coercion, ``default``, ``required`` and ``when``;
* **object** (``fields``): a nested structure (customer, address, totals, metadata);
* **list** (``each``): a repeated group such as order lines, one item per source element;
* **first_of** (``first_of``): candidates tried in order, the first that yields a value wins; with
  ``when`` on the candidates this is a switch.

A value or ``first_of`` rule that copies personal data into a canonical field that does not hold
personal data is refused by ``mappings validate`` (``saleshub.mapping.personal``) unless it says so
with ``personal_data: {allowed: true, reason: ...}`` (``PersonalDataSpec``).

Unknown keys are rejected everywhere. ``contracts/mapping-file.schema.json`` is generated from these
models (``saleshub mappings schema``) so that editors can complete and check files as they are typed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

__all__ = [
    "FORMAT_VERSION",
    "NODE_TAGS",
    "Condition",
    "FirstOfNode",
    "ListNode",
    "LookupSpec",
    "MappingFile",
    "Node",
    "ObjectNode",
    "PersonalDataSpec",
    "Scalar",
    "SourceSpec",
    "Transform",
    "ValueNode",
    "ValueType",
]

FORMAT_VERSION = 1

Scalar = str | int | bool | Decimal | None
Transform = Literal["trim", "upper", "lower", "collapse_spaces", "strip_leading_zeros"]
ValueType = Literal["string", "int", "decimal", "money", "datetime", "bool", "phone", "email"]
NODE_TAGS = frozenset({"value", "object", "list", "first_of"})


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LookupSpec(_Spec):
    """Translate a source code through a crosswalk table (``mappings/crosswalks/<table>.csv``)."""

    table: str = Field(description="crosswalk file name without .csv")
    column: str = Field(description="column holding the source system's codes")
    to: str = Field(default="canonical", description="column holding the result")
    on_missing: Literal["error", "default", "pass_through"] = Field(
        default="error",
        description="error: the order fails; default: use `default`; pass_through: keep the code",
    )
    default: str | None = None
    optional_column: bool = Field(
        default=False,
        description="the column may be absent from a shared crosswalk (a plug-in system's column "
        "not added yet): every code is then missing and `on_missing` applies",
    )

    @model_validator(mode="after")
    def _default_iff_policy(self) -> Self:
        if self.on_missing == "default" and self.default is None:
            raise ValueError("on_missing: default needs a `default` value")
        if self.on_missing != "default" and self.default is not None:
            raise ValueError("`default` is only used with on_missing: default")
        return self


class PersonalDataSpec(_Spec):
    """A steward's acknowledgement that a rule copies personal data into a non-personal field."""

    allowed: Literal[True] = Field(description="true: this rule may read personal data")
    reason: str = Field(
        max_length=500,
        description="why the field must carry it (shown to whoever reviews the mapping)",
        # For editors; the validator below says it in words.
        json_schema_extra={"minLength": 1, "pattern": r"\S"},
    )

    @field_validator("reason")
    @classmethod
    def _check_reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                "say why the field must carry personal data; an empty reason acknowledges nothing"
            )
        return value


class Condition(_Spec):
    """A test on one source value; a node whose ``when`` fails yields nothing."""

    path: str | None = None
    expr: str | None = None
    with_: dict[str, ValueNode] = Field(default_factory=dict, alias="with")
    equals: Scalar = None
    not_equals: Scalar = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _one_source_one_test(self) -> Self:
        if (self.path is None) == (self.expr is None):
            raise ValueError("a condition needs exactly one of `path` or `expr`")
        tests = {"equals", "not_equals", "in_", "not_in", "exists"} & self.model_fields_set
        if len(tests) > 1:
            raise ValueError("a condition has at most one test (equals, not_equals, in, not_in, exists)")
        return self


class ValueNode(_Spec):
    """One canonical value taken from the source, a constant, an expression or the item position."""

    path: str | None = Field(default=None, description="JMESPath (JSON) or XPath (XML)")
    const: Scalar | list[Scalar] = None
    expr: str | None = Field(default=None, description="expression over the `with` names")
    with_: dict[str, ValueNode] = Field(default_factory=dict, alias="with")
    position: bool | None = Field(default=None, description="1-based position in the `each` group")
    transform: list[Transform] = Field(default_factory=list)
    lookup: LookupSpec | None = None
    type: ValueType = "string"
    scale: int | None = Field(default=None, ge=0, le=12, description="decimal places (decimal)")
    decimal_separator: Literal[".", ","] = "."
    minor_units: bool = Field(default=False, description="money: the source gives cents")
    currency: ValueNode | None = Field(default=None, description="money: where the currency is")
    timezone: str | None = Field(default=None, description="datetime: IANA zone for naive times")
    format: str | None = Field(default=None, description="datetime: strptime format")
    region: ValueNode | None = Field(default=None, description="phone: ISO country for local numbers")
    default: Scalar = None
    required: bool = False
    when: Condition | None = None
    personal_data: PersonalDataSpec | None = Field(
        default=None, description="acknowledge that this rule copies personal data into a non-personal field"
    )

    @model_validator(mode="after")
    def _check_source_and_options(self) -> Self:
        sources = {"path", "const", "expr", "position"} & self.model_fields_set
        if len(sources) != 1:
            raise ValueError("a value needs exactly one of `path`, `const`, `expr` or `position`")
        if self.with_ and self.expr is None:
            raise ValueError("`with` is only used with `expr`")
        if (self.type == "money") != (self.currency is not None):
            raise ValueError("`currency` is needed with, and only with, type: money")
        if self.minor_units and self.type != "money":
            raise ValueError("`minor_units` is only used with type: money")
        if self.region is not None and self.type != "phone":
            raise ValueError("`region` is only used with type: phone")
        if (self.timezone or self.format) and self.type != "datetime":
            raise ValueError("`timezone` and `format` are only used with type: datetime")
        if self.scale is not None and self.type != "decimal":
            raise ValueError("`scale` is only used with type: decimal")
        return self


class ObjectNode(_Spec):
    """A nested canonical structure built from its own field nodes."""

    fields: dict[str, Node]
    when: Condition | None = None


class ListNode(_Spec):
    """A repeated group: one canonical item per element that ``each`` selects."""

    each: str = Field(description="path to the list (JSON) or the repeated elements (XML)")
    fields: dict[str, Node]
    when: Condition | None = None


class FirstOfNode(_Spec):
    """Candidates tried in order; the first that yields a value is used."""

    first_of: list[ValueNode] = Field(min_length=1)
    default: Scalar = None
    required: bool = False
    personal_data: PersonalDataSpec | None = Field(
        default=None,
        description="acknowledge that these candidates copy personal data into a non-personal field",
    )


def _node_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {
            ValueNode: "value",
            ObjectNode: "object",
            ListNode: "list",
            FirstOfNode: "first_of",
        }.get(type(value))
    if not isinstance(value, dict):
        return None
    if "each" in value:
        return "list"
    if "first_of" in value:
        return "first_of"
    if "fields" in value:
        return "object"
    return "value"


Node = Annotated[
    Annotated[ValueNode, Tag("value")]
    | Annotated[ObjectNode, Tag("object")]
    | Annotated[ListNode, Tag("list")]
    | Annotated[FirstOfNode, Tag("first_of")],
    Discriminator(
        _node_kind,
        custom_error_type="node_kind",
        custom_error_message="a node is a mapping with path/const/expr/position, fields, each or first_of",
    ),
]


class SourceSpec(_Spec):
    """What kind of document the mapping reads."""

    format: Literal["json", "xml"]
    namespaces: dict[str, str] = Field(
        default_factory=dict, description="XML: prefix → namespace URI used in XPath"
    )


class MappingFile(_Spec):
    """One mapping file: a source system's payload to one canonical service order."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    version: Literal[1] = Field(description="version of the mapping-file format")
    system: str = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$", description="source system code")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="mapping name, e.g. order")
    revision: str = Field(min_length=1, max_length=64, description="steward's revision label")
    description: str | None = None
    source: SourceSpec
    target: dict[str, Node]


Condition.model_rebuild()
ValueNode.model_rebuild()
ObjectNode.model_rebuild()
ListNode.model_rebuild()
MappingFile.model_rebuild()
