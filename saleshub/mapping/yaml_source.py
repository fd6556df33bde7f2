"""Load a YAML document together with the line of every key, refusing duplicate keys.

PyYAML's safe loader silently keeps the last of two equal keys and forgets where things were. Stewards
need both: a duplicate key is an error naming both lines, and every later error (an unknown field, a
missing crosswalk) points at the line of the key it is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from saleshub.errors import LoadIssue

__all__ = ["Located", "Path", "dotted_key", "load_located_yaml"]

Path = tuple[str | int, ...]


def dotted_key(path: Path) -> str:
    """A steward-readable key for a path in a mapping file: ``customer.phone.region``.

    The ``target`` root and the ``fields`` levels are structure, not names, so they are left out.
    """
    parts = [str(p) for i, p in enumerate(path) if p != "fields" and not (i == 0 and p == "target")]
    return ".".join(parts)


@dataclass(frozen=True, slots=True)
class Located:
    """A loaded YAML document and the 1-based line of each key or list item, by path."""

    data: Any
    lines: dict[Path, int]

    def line_of(self, path: Path) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Path, int] = {}
        self.issues: list[LoadIssue] = []
        self._scalars = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalars.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._scalars.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                dotted = dotted_key(path)
                self.issues.append(LoadIssue(self.file, line, dotted, f"key {key!r} is not text"))
                key = str(key)
            if key in result:
                first = self.lines[(*path, key)]
                dotted = dotted_key((*path, key))
                message = f"duplicate key (first defined on line {first})"
                self.issues.append(LoadIssue(self.file, line, dotted, message))
                continue
            self.lines[(*path, key)] = line
            result[key] = self.build(value_node, (*path, key))
        return result


# PyYAML's wording, and what it usually means in a hand-edited mapping file.
_PLAIN = (
    (
        "mapping values are not allowed",
        "a ':' where a value was expected: quote a value that contains ': ', or check the indentation",
    ),
    ("could not find expected ':'", "a line that is not 'key: value': check the indentation and the ':'"),
    ("cannot start any token", "a tab or a character YAML cannot start with; indent with spaces only"),
    ("did not find expected key", "the indentation does not line up with the lines above"),
    ("expected <block end>", "the indentation does not line up with the lines above"),
    ("did not find expected '-' indicator", "a list item ('- ') does not line up with the items above"),
    ("found unexpected end of stream", "a quote or bracket is opened but never closed"),
    ("did not find expected ',' or ']'", "a list in [ ] is not closed or lacks a ','"),
    ("did not find expected ',' or '}'", "a { } group is not closed or lacks a ','"),
    ("expected ',' or '}'", "a { } group is not closed or lacks a ','"),
    ("expected ',' or ']'", "a list in [ ] is not closed or lacks a ','"),
    ("found undefined alias", "a '*name' refers to no '&name'"),
    ("found duplicate anchor", "the same '&name' is defined twice"),
)


def _yaml_issue(file: str, exc: yaml.YAMLError) -> LoadIssue:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
    plain = next((words for known, words in _PLAIN if known in problem), problem)
    column = f" (column {mark.column + 1})" if mark is not None else ""
    return LoadIssue(file, line, "", f"is not valid YAML{column}: {plain}")


def load_located_yaml(text: str, file: str) -> tuple[Located | None, list[LoadIssue]]:
    """Parse ``text``; return the document with key lines, or ``None`` and the syntax error in plain words."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        return None, [_yaml_issue(file, exc)]
    if root is None:
        return None, [LoadIssue(file, 1, "", "the file is empty")]
    builder = _Builder(file)
    try:
        data = builder.build(root, ())
    except yaml.YAMLError as exc:
        return None, [_yaml_issue(file, exc)]
    return Located(data, builder.lines), builder.issues
