"""The staged manifest's rows read back: unusable rows, repeated keys, orders it carries.

``manifest_problems`` / ``duplicate_keys`` / ``drop_unusable_rows`` report invalid rows and keys the
manifest repeats, and keep one row per key (the newest), so the comparison is one-to-one; rows that
carry an order but no fingerprint get one (``set_manifest_fingerprints``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from saleshub.store.manifest import MANIFEST_TABLE

__all__ = [
    "DuplicateKey",
    "ManifestProblem",
    "drop_unusable_rows",
    "duplicate_keys",
    "manifest_health",
    "manifest_orders",
    "manifest_orders_without_fingerprint",
    "manifest_problems",
    "set_manifest_fingerprints",
]


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """A manifest row that could not be used: its line in the file, its key if readable, why."""

    line: int
    key: str
    problem: str


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """A key the manifest lists more than once, with the lines where it appears."""

    key: str
    lines: tuple[int, ...]


def manifest_health(conn: Connection) -> tuple[int, int]:
    """``(rows with a problem, usable rows with an order but no fingerprint)``, in one scan."""
    row = conn.execute(
        text(
            "SELECT count(*) FILTER (WHERE problem IS NOT NULL), "
            "count(*) FILTER (WHERE problem IS NULL AND fingerprint IS NULL AND doc IS NOT NULL) "
            f"FROM {MANIFEST_TABLE}"
        )
    ).one()
    return int(row[0]), int(row[1])


def manifest_orders_without_fingerprint(conn: Connection) -> list[tuple[int, dict[str, Any]]]:
    """``(line, canonical order JSON)`` of usable manifest rows that carry an order but no fingerprint."""
    rows = conn.execute(
        text(
            f"SELECT line_no, doc FROM {MANIFEST_TABLE} "
            "WHERE problem IS NULL AND fingerprint IS NULL AND doc IS NOT NULL ORDER BY line_no"
        )
    )
    return [(int(line), doc) for line, doc in rows]


def set_manifest_fingerprints(conn: Connection, values: Sequence[tuple[int, int | None, str | None]]) -> None:
    """Set ``(line, fingerprint, problem)`` of manifest rows (fingerprints computed from their order)."""
    if not values:
        return
    conn.execute(
        text(
            f"UPDATE {MANIFEST_TABLE} m SET fingerprint = v.fingerprint, problem = v.problem "
            "FROM unnest(CAST(:lines AS bigint[]), CAST(:fps AS bigint[]), CAST(:problems AS text[])) "
            "AS v(line_no, fingerprint, problem) WHERE m.line_no = v.line_no"
        ),
        {
            "lines": [line for line, _, _ in values],
            "fps": [fp for _, fp, _ in values],
            "problems": [problem for _, _, problem in values],
        },
    )


def manifest_problems(conn: Connection) -> list[ManifestProblem]:
    """Every manifest row that cannot be compared, in file order."""
    rows = conn.execute(
        text(
            f"SELECT line_no, coalesce(key, ''), problem FROM {MANIFEST_TABLE} "
            "WHERE problem IS NOT NULL ORDER BY 1"
        )
    )
    return [ManifestProblem(int(line), key, problem) for line, key, problem in rows]


def duplicate_keys(conn: Connection) -> list[DuplicateKey]:
    """Keys that more than one usable manifest row carries, with their lines.

    First a hash aggregate over the keys' 64-bit hashes (narrower than the text, and no sort), then
    the lines of the few keys whose hash repeats.
    """
    hashes = (
        conn.execute(
            text(
                f"SELECT hashtextextended(key, 0) FROM {MANIFEST_TABLE} WHERE problem IS NULL "
                "GROUP BY 1 HAVING count(*) > 1"
            )
        )
        .scalars()
        .all()
    )
    if not hashes:
        return []
    rows = conn.execute(
        text(
            f"SELECT key, array_agg(line_no ORDER BY line_no) FROM {MANIFEST_TABLE} "
            "WHERE problem IS NULL AND hashtextextended(key, 0) = ANY(:hashes) "
            "GROUP BY key HAVING count(*) > 1 ORDER BY key"
        ),
        {"hashes": list(hashes)},
    )
    return [DuplicateKey(key, tuple(int(line) for line in lines)) for key, lines in rows]


def drop_unusable_rows(conn: Connection, duplicates: Sequence[DuplicateKey], *, problems: bool) -> int:
    """Delete invalid rows (if ``problems``) and all but the newest row of each duplicated key.

    The newest is the highest version, then the latest update time, then the last line. Returns the
    rows deleted.
    """
    deleted = 0
    if problems:
        deleted += conn.execute(text(f"DELETE FROM {MANIFEST_TABLE} WHERE problem IS NOT NULL")).rowcount
    if duplicates:
        deleted += conn.execute(
            text(
                f"""DELETE FROM {MANIFEST_TABLE} m USING (
                    SELECT line_no, row_number() OVER (PARTITION BY key
                        ORDER BY version DESC NULLS LAST, updated_at DESC NULLS LAST, line_no DESC) AS rank
                    FROM {MANIFEST_TABLE} WHERE key = ANY(:keys)) d
                WHERE m.line_no = d.line_no AND d.rank > 1"""
            ),
            {"keys": [duplicate.key for duplicate in duplicates]},
        ).rowcount
    return deleted


def manifest_orders(conn: Connection, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The canonical order JSON that the manifest carries for each of ``keys`` (where it has one)."""
    rows = conn.execute(
        text(f"SELECT key, doc FROM {MANIFEST_TABLE} WHERE key = ANY(:keys) AND doc IS NOT NULL"),
        {"keys": list(keys)},
    )
    return dict(rows.all())
