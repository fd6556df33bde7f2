"""What changed between two mapping revisions, field by field, in the words a steward uses.

``diff_revisions(old, new)`` compares two sets of mapping files (``MappingFiles.files``):

* a mapping file's canonical fields: a field newly mapped, no longer mapped, or mapped differently
  (``reads order.channel`` → ``reads order.salesChannel``, ``looks up channels.csv column pyxis``
  added, ``default IN_STORE`` removed …), and its header (``revision``, ``source``);
* a crosswalk's rows: rows added and rows removed, each shown with its column names;
* files added or removed.

The comparison works on the files as written (YAML and CSV), so it needs no compilation and also
describes revisions this hub version could no longer compile.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["Change", "diff_revisions"]

# Mapping-file keys in steward words, in the order they are shown.
_WORDS = {
    "path": "reads",
    "const": "constant",
    "expr": "computes",
    "with": "with values",
    "position": "position in its group",
    "first_of": "first value of",
    "transform": "transforms",
    "lookup": "looks up",
    "type": "type",
    "format": "format",
    "timezone": "time zone",
    "decimal_separator": "decimal separator",
    "minor_units": "amount in minor units",
    "currency": "currency",
    "region": "phone region",
    "default": "default",
    "required": "required",
    "when": "only when",
    "each": "one per element of",
}
_GROUPS = ("fields",)


@dataclass(frozen=True, slots=True)
class Change:
    """One change: the file, what it is about (a canonical field, a crosswalk row …), and how."""

    file: str
    subject: str
    description: str

    def __str__(self) -> str:
        return f"{self.file}: {self.subject}: {self.description}"


def diff_revisions(old: dict[str, str], new: dict[str, str]) -> list[Change]:
    """Every change from the ``old`` files to the ``new`` files (relative path → text)."""
    changes: list[Change] = []
    for path in sorted(old.keys() | new.keys()):
        if path not in new:
            changes.append(Change(path, "file", "removed"))
        elif path not in old:
            changes.append(Change(path, "file", "added"))
        elif old[path] != new[path]:
            compare = _crosswalk_changes if path.endswith(".csv") else _mapping_changes
            found = compare(path, old[path], new[path])
            changes += found or [Change(path, "file", "changed in layout or comments only")]
    return changes


def _say(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_WORDS.get(k, k)} {_say(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_say(v) for v in value) + "]"
    return str(value)


def _leaves(node: Any, prefix: str, out: dict[str, dict[str, Any]]) -> None:
    """Canonical field → its specification, for every field under ``node``."""
    if not isinstance(node, dict):
        return
    for name, spec in node.items():
        target = f"{prefix}{name}"
        if isinstance(spec, dict) and "fields" in spec:
            own = {k: v for k, v in spec.items() if k != "fields"}
            if own:
                out[target] = own
            suffix = "[]." if "each" in spec else "."
            _leaves(spec["fields"], f"{target}{suffix}", out)
        else:
            out[target] = spec if isinstance(spec, dict) else {"const": spec}


def _load(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _mapping_changes(path: str, old_text: str, new_text: str) -> list[Change]:
    old, new = _load(old_text), _load(new_text)
    changes: list[Change] = []
    for key in sorted((old.keys() | new.keys()) - {"target"}):
        if old.get(key) != new.get(key):
            changes.append(Change(path, key, f"{_say(old.get(key))} → {_say(new.get(key))}"))
    before: dict[str, dict[str, Any]] = {}
    after: dict[str, dict[str, Any]] = {}
    _leaves(old.get("target"), "", before)
    _leaves(new.get("target"), "", after)
    for target in sorted(before.keys() | after.keys()):
        if target not in after:
            changes.append(Change(path, target, "no longer mapped"))
        elif target not in before:
            changes.append(Change(path, target, "now mapped: " + _describe(after[target])))
        elif before[target] != after[target]:
            changes.append(Change(path, target, _field_change(before[target], after[target])))
    return changes


def _describe(spec: dict[str, Any]) -> str:
    return "; ".join(f"{_WORDS.get(key, key)} {_say(value)}" for key, value in spec.items())


def _field_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    parts: list[str] = []
    for key in [k for k in _WORDS if k in old or k in new] + sorted(
        (old.keys() | new.keys()) - _WORDS.keys()
    ):
        word = _WORDS.get(key, key)
        if key not in new:
            parts.append(f"no longer {word} {_say(old[key])}")
        elif key not in old:
            parts.append(f"now {word} {_say(new[key])}")
        elif old[key] != new[key]:
            parts.append(f"{word} {_say(old[key])} → {_say(new[key])}")
    return "; ".join(parts)


def _rows(text: str) -> tuple[list[str], list[tuple[str, ...]]]:
    rows = [row for row in csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")) if any(row)]
    if not rows:
        return [], []
    return rows[0], [tuple(row) for row in rows[1:]]


def _crosswalk_changes(path: str, old_text: str, new_text: str) -> list[Change]:
    old_header, old_rows = _rows(old_text)
    new_header, new_rows = _rows(new_text)
    if old_header != new_header:
        return [Change(path, "columns", f"{', '.join(old_header)} → {', '.join(new_header)}")]

    def shown(row: tuple[str, ...]) -> str:
        return ", ".join(f"{name} {value}" for name, value in zip(new_header, row, strict=False) if value)

    removed = [row for row in old_rows if row not in new_rows]
    added = [row for row in new_rows if row not in old_rows]
    return [Change(path, "row", f"removed: {shown(row)}") for row in removed] + [
        Change(path, "row", f"added: {shown(row)}") for row in added
    ]
