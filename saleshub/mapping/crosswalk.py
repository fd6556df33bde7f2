"""Crosswalks: CSV code tables that translate one system's codes into canonical ones.

One file per kind of code (``products.csv``, ``channels.csv`` …) with one row per canonical value and
one column per source system, so a steward sees on one line that Pyxis ``PX-1001`` and Tempo
``TMP-77`` are the same canonical product. A lookup names the file, the column it reads codes from and
the column it returns (``canonical`` by default). An empty cell means "this system has no such code".

Checks, reported all together with file and line: unreadable or ragged rows, duplicate or empty
column names, a code repeated within a column that a lookup reads, a key whose result is empty, and
codes with surrounding spaces (they would never match a trimmed source value).
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from saleshub.errors import LoadIssue

__all__ = ["Crosswalk", "load_crosswalk"]


@dataclass(frozen=True, slots=True)
class Crosswalk:
    """One crosswalk file as read: its columns and its rows with their line numbers."""

    name: str
    file: str
    columns: tuple[str, ...]
    rows: tuple[tuple[int, dict[str, str]], ...]
    sha256: str

    def table(self, column: str, to: str) -> tuple[dict[str, str], list[LoadIssue]]:
        """The ``column`` → ``to`` dictionary, and every problem that makes it unsafe to use."""
        issues: list[LoadIssue] = []
        for wanted in (column, to):
            if wanted not in self.columns:
                known = ", ".join(self.columns)
                message = f"has no column {wanted!r}; its columns are: {known}"
                issues.append(LoadIssue(self.file, 1, wanted, message))
        if issues:
            return {}, issues
        result: dict[str, str] = {}
        first_line: dict[str, int] = {}
        for line, row in self.rows:
            key, value = row[column], row[to]
            if key == "":
                continue
            if key in result:
                message = f"code {key!r} appears twice in column {column!r} (first on line {first_line[key]})"
                issues.append(LoadIssue(self.file, line, column, message))
                continue
            if value == "":
                message = f"code {key!r} maps to an empty {to!r} value"
                issues.append(LoadIssue(self.file, line, to, message))
                continue
            result[key] = value
            first_line[key] = line
        return result, issues


def _row_issues(file: str, line: int, row: dict[str, str]) -> list[LoadIssue]:
    return [
        LoadIssue(file, line, name, f"value {value!r} has leading or trailing spaces")
        for name, value in row.items()
        if value != value.strip()
    ]


def load_crosswalk(path: Path, name: str) -> tuple[Crosswalk | None, list[LoadIssue]]:
    """Read and check one crosswalk CSV file (UTF-8, optional BOM, comma-separated, header row)."""
    file = f"crosswalks/{path.name}"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [LoadIssue(file, None, "", f"cannot be read: {exc.strerror}")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, [LoadIssue(file, None, "", f"is not UTF-8 (byte {exc.start}); save it as UTF-8")]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    issues: list[LoadIssue] = []
    try:
        header = next(reader, None)
        if not header:
            return None, [LoadIssue(file, 1, "", "is empty; it needs a header row")]
        if len(header) == 1 and header[0].count(";") >= 1:
            message = (
                "is separated by ';' (as Excel saves CSV with Spanish, French, Italian or Polish "
                "settings); save it as 'CSV UTF-8 (comma delimited)', or replace the ';' with ','"
            )
            return None, [LoadIssue(file, 1, "", message)]
        columns = tuple(cell.strip() for cell in header)
        for index, column in enumerate(columns):
            if column == "":
                issues.append(LoadIssue(file, 1, f"column {index + 1}", "has no name"))
            elif columns.index(column) != index:
                issues.append(LoadIssue(file, 1, column, "column name appears twice"))
        rows: list[tuple[int, dict[str, str]]] = []
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(columns):
                message = f"has {len(cells)} cells but the header has {len(columns)} columns"
                issues.append(LoadIssue(file, line, "", message))
                continue
            row = dict(zip(columns, cells, strict=True))
            issues += _row_issues(file, line, row)
            rows.append((line, row))
    except csv.Error as exc:
        issues.append(LoadIssue(file, reader.line_num, "", f"is not valid CSV: {exc}"))
        return None, issues
    digest = hashlib.sha256(raw).hexdigest()
    return Crosswalk(name, file, columns, tuple(rows), digest), issues
