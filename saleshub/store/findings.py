"""A reconciliation run's findings: written by the run itself, explained, read for reports.

The classification (``saleshub.store.classification``) writes most findings; ``record_findings``
adds those the run finds itself (duplicated keys, unusable manifest rows), ``set_field_differences``
and ``drop_findings`` keep the field-by-field explanation; the reads serve reports and history.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

__all__ = [
    "StagedFinding",
    "drop_findings",
    "finding_counts_by",
    "findings",
    "open_findings_since",
    "record_findings",
    "set_field_differences",
]


@dataclass(frozen=True, slots=True)
class StagedFinding:
    """A finding written by the run itself rather than by the classification (duplicates, bad rows)."""

    kind: str
    external_order_id: str
    detail: str


def record_findings(
    conn: Connection, run_id: uuid.UUID, staged: Sequence[StagedFinding], at: datetime
) -> None:
    """Write findings the run found itself (duplicated keys, unusable manifest rows)."""
    if not staged:
        return
    conn.execute(
        text(
            "INSERT INTO reconciliation_findings (run_id, kind, external_order_id, detail, first_seen_at) "
            "SELECT :run_id, k, e, d, :at FROM unnest(CAST(:kinds AS text[]), CAST(:keys AS text[]), "
            "CAST(:details AS text[])) AS t(k, e, d)"
        ),
        {
            "run_id": run_id,
            "at": at,
            "kinds": [f.kind for f in staged],
            "keys": [f.external_order_id for f in staged],
            "details": [f.detail for f in staged],
        },
    )


def set_field_differences(
    conn: Connection, run_id: uuid.UUID, differences: dict[str, list[dict[str, Any]]]
) -> None:
    """Store the field differences of the run's stale or mismatching orders, by external order id."""
    if not differences:
        return
    conn.execute(
        text(
            "UPDATE reconciliation_findings f SET field_differences = v.d::jsonb "
            "FROM unnest(CAST(:keys AS text[]), CAST(:docs AS text[])) AS v(k, d) "
            "WHERE f.run_id = :run_id AND f.external_order_id = v.k "
            "AND f.kind IN ('hub_stale', 'source_stale', 'content_mismatch')"
        ),
        {"run_id": run_id, "keys": list(differences), "docs": [json.dumps(d) for d in differences.values()]},
    )


def drop_findings(conn: Connection, run_id: uuid.UUID, kind: str, keys: Sequence[str]) -> None:
    """Delete a run's findings of ``kind`` for ``keys`` (content differences the rules tolerate)."""
    if keys:
        conn.execute(
            text(
                "DELETE FROM reconciliation_findings WHERE run_id = :run_id AND kind = :kind "
                "AND external_order_id = ANY(:keys)"
            ),
            {"run_id": run_id, "kind": kind, "keys": list(keys)},
        )


def findings(conn: Connection, run_id: uuid.UUID, *, limit: int | None = None) -> list[dict[str, Any]]:
    """A run's findings as dicts (column → value), content mismatches with field differences first."""
    rows = conn.execute(
        text(
            "SELECT kind, external_order_id, hub_order_id, country_code, bu_code, sales_channel, "
            "source_version, hub_version, source_updated_at, hub_updated_at, source_fingerprint, "
            "hub_fingerprint, field_differences, detail, first_seen_at FROM reconciliation_findings "
            "WHERE run_id = :run_id ORDER BY first_seen_at, kind, external_order_id "
            "LIMIT CAST(:limit AS bigint)"
        ),
        {"run_id": run_id, "limit": limit},
    )
    return [dict(row._mapping) for row in rows]


def finding_counts_by(conn: Connection, run_id: uuid.UUID, dimension: str) -> dict[tuple[str, str], int]:
    """``{(value, kind): count}`` of a run's findings by a tenancy column.

    ``dimension`` is ``country_code``, ``bu_code`` or ``sales_channel``; a finding without it counts
    as ``unknown``.
    """
    if dimension not in ("country_code", "bu_code", "sales_channel"):
        raise ValueError(f"cannot count findings by {dimension!r}")
    rows = conn.execute(
        text(
            f"SELECT coalesce({dimension}, 'unknown'), kind, count(*) FROM reconciliation_findings "
            "WHERE run_id = :run_id GROUP BY 1, 2"
        ),
        {"run_id": run_id},
    )
    return {(value, kind): int(count) for value, kind, count in rows}


def open_findings_since(
    conn: Connection, run_a: uuid.UUID, run_b: uuid.UUID
) -> dict[str, list[dict[str, Any]]]:
    """Run B against run A: findings ``new`` in B, ``resolved`` since A, and ``open`` in both."""
    query = text(
        """SELECT CASE WHEN a.finding_id IS NULL THEN 'new' WHEN b.finding_id IS NULL THEN 'resolved'
                       ELSE 'open' END AS change,
                  coalesce(b.kind, a.kind) AS kind,
                  coalesce(b.external_order_id, a.external_order_id) AS external_order_id,
                  coalesce(b.country_code, a.country_code) AS country_code,
                  coalesce(b.first_seen_at, a.first_seen_at) AS first_seen_at
           FROM (SELECT * FROM reconciliation_findings WHERE run_id = :a) a
           FULL JOIN (SELECT * FROM reconciliation_findings WHERE run_id = :b) b
             ON a.kind = b.kind AND a.external_order_id = b.external_order_id
           ORDER BY first_seen_at, kind, external_order_id"""
    )
    result: dict[str, list[dict[str, Any]]] = {"new": [], "resolved": [], "open": []}
    for row in conn.execute(query, {"a": run_a, "b": run_b}):
        mapping = dict(row._mapping)
        result[mapping.pop("change")].append(mapping)
    return result
