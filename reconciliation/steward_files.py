"""The stewards' YAML files of reconciliation, loaded one way: parsed with lines, checked, file:line errors.

``reconciliation.yaml`` (``rules``) and ``cross_references.yaml`` (``crossrefs``) are read by
``load_steward_file``: the document is parsed keeping each key's line, validated against its
pydantic model, and every problem — a YAML syntax error or each validation error — becomes a
``LoadIssue`` naming the file (``mappings/<name>``) and line, raised together as a
``MappingLoadError``, like the mapping files (``saleshub mappings validate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from saleshub.errors import LoadIssue, MappingLoadError
from saleshub.mapping.yaml_source import Located, load_located_yaml

__all__ = ["StewardFile", "load_steward_file", "located_issues"]

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class StewardFile(Generic[_M]):
    """A loaded file: its checked value, the document with its lines, and the name errors give it."""

    value: _M
    located: Located
    file: str


def located_issues(error: ValidationError, located: Located, file: str) -> list[LoadIssue]:
    """Each validation error of a located YAML document as a ``LoadIssue`` with its file and line."""
    issues = []
    for item in error.errors():
        loc = tuple(item["loc"])
        issues.append(LoadIssue(file, located.line_of(loc), ".".join(str(part) for part in loc), item["msg"]))
    return issues


def load_steward_file(mappings_dir: Path, name: str, model: type[_M]) -> StewardFile[_M] | None:
    """Load and check ``mappings_dir/name`` as ``model``; ``None`` when the file is absent.

    Raises ``MappingLoadError`` listing every problem with file:line.
    """
    path = mappings_dir / name
    if not path.exists():
        return None
    file = f"{mappings_dir.name}/{name}"
    located, issues = load_located_yaml(path.read_text(encoding="utf-8"), file)
    if located is None or issues:
        raise MappingLoadError(issues)
    try:
        return StewardFile(model.model_validate(located.data), located, file)
    except ValidationError as exc:
        raise MappingLoadError(located_issues(exc, located, file)) from None
