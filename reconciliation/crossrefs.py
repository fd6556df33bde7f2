"""The stewards' cross-references (``mappings/cross_references.yaml``): loaded, checked, with file:line.

A reference is a key that two or more systems share for one order: a system's own order id quoted by
another (the ERP's source-transaction fields), or a customer's purchase-order number. For each
system it names the canonical field holding the key and, optionally, a condition on another field.
``compare`` says what the systems' reports of one order must agree on, with the same kinds of
tolerance as ``reconciliation.yaml``. Every problem is reported at once with its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from canonical.model import ServiceOrder, is_personal_field
from reconciliation.rules import FieldRules
from reconciliation.steward_files import load_steward_file

__all__ = [
    "CROSS_REFERENCES_FILE",
    "CompareRules",
    "Condition",
    "CrossReferences",
    "FieldPath",
    "Reference",
    "SystemKey",
    "load_cross_references",
]

#: The file's name inside the mappings directory.
CROSS_REFERENCES_FILE = "cross_references.yaml"

_SYSTEM = r"^[a-z][a-z0-9_]{1,31}$"


def _field_path(value: str) -> str:
    parts = value.split(".")
    if parts[0] not in ServiceOrder.model_fields:
        known = ", ".join(sorted(ServiceOrder.model_fields))
        raise ValueError(f"{parts[0]!r} is not a canonical field (known: {known})")
    if parts[0] == "system_metadata" and len(parts) != 2:
        raise ValueError("name one entry: system_metadata.<name>")
    if any(not part.isidentifier() for part in parts):
        raise ValueError(f"{value!r} is not a dotted field path")
    if is_personal_field(value) or (parts[0] in ("customer", "service_address") and len(parts) == 1):
        raise ValueError(
            f"{value!r} holds personal data, which the hub keeps sealed and cannot match on: name a "
            "non-personal field (an order reference, a system_metadata entry); customers are matched "
            "by `saleshub reconcile links`"
        )
    return value


#: A dotted canonical field path, e.g. ``system_metadata.customer_po_number``.
FieldPath = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Condition(_Strict):
    """The key counts only when another field of the order holds one of these values."""

    field: FieldPath
    in_: Annotated[list[str], Field(min_length=1, alias="in")]

    _path = field_validator("field")(_field_path)


class SystemKey(_Strict):
    """Where one system's orders carry the key."""

    field: FieldPath
    when: Condition | None = None

    _path = field_validator("field")(_field_path)


class Reference(_Strict):
    """One shared key and the systems that carry it."""

    description: str = ""
    systems: Annotated[dict[Annotated[str, Field(pattern=_SYSTEM)], SystemKey], Field(min_length=2)]


class CompareRules(FieldRules):
    """What two systems' reports of one order are compared on, and with what tolerance."""

    fields: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: ["totals", "status", "ordered_at", "lines"]
    )

    @field_validator("fields")
    @classmethod
    def _canonical(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in ServiceOrder.model_fields]
        if unknown:
            raise ValueError(f"not canonical fields: {', '.join(unknown)}")
        return names


class CrossReferences(_Strict):
    """The whole file."""

    version: int = Field(ge=1, le=1)
    references: dict[Annotated[str, Field(pattern=_SYSTEM)], Reference] = {}
    compare: CompareRules = CompareRules()


def load_cross_references(mappings_dir: Path) -> CrossReferences:
    """Load ``cross_references.yaml`` from ``mappings_dir`` (no references when absent).

    Raises ``MappingLoadError`` listing every problem with file:line.
    """
    loaded = load_steward_file(mappings_dir, CROSS_REFERENCES_FILE, CrossReferences)
    return CrossReferences(version=1) if loaded is None else loaded.value
