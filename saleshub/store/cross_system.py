"""Orders reported by more than one system: matching them through declared keys, keeping conflicts.

``matched_orders`` finds, in one statement, every pair of orders of two different systems that carry
the same value of a declared cross-reference (a canonical JSON path per system, optionally only when
another path holds one of some values; values compared trimmed and in upper case), where either
order was written in the window; each pair comes with both canonical orders. The comparison itself
is the caller's; ``record_conflicts`` keeps the pairs that disagree, carrying over since when each
has been open from the previous cross-system run. A cross-system run is a row of
``reconciliation_runs`` whose system is ``CROSS_SYSTEM``; its operational figures go in ``figures``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from saleshub.store.personal import personal_data

__all__ = [
    "CROSS_SYSTEM",
    "ConflictRow",
    "KeySpec",
    "MatchedPair",
    "conflict_counts_by",
    "conflicts",
    "matched_orders",
    "previous_cross_run",
    "record_conflicts",
    "run_figures",
    "set_run_figures",
]

#: The ``source_system`` of cross-system runs (not a valid system code, so it never collides with one).
CROSS_SYSTEM = "cross-system"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """Where one system's orders carry one reference: a JSON path, and an optional condition."""

    reference: str
    system: str
    path: tuple[str, ...]
    when_path: tuple[str, ...] | None = None
    when_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MatchedPair:
    """Two systems' orders with the same key: identities, tenancy (left's) and both canonical JSONs."""

    reference: str
    value: str
    left: dict[str, Any]
    right: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ConflictRow:
    """A conflict to keep: the pair and what differs (``[{field, left, right, rule}]``)."""

    pair: MatchedPair
    categories: tuple[str, ...]
    differences: list[dict[str, Any]]


def _key_select(i: int, spec: KeySpec, params: dict[str, Any]) -> str:
    params |= {f"r{i}": spec.reference, f"s{i}": spec.system, f"p{i}": list(spec.path)}
    condition = ""
    if spec.when_path is not None:
        params |= {f"w{i}": list(spec.when_path), f"v{i}": [v.strip().upper() for v in spec.when_values]}
        condition = f" AND upper(btrim(o.content #>> CAST(:w{i} AS text[]))) = ANY(CAST(:v{i} AS text[]))"
    return (
        f"SELECT CAST(:r{i} AS text) AS reference, o.hub_order_id, o.source_system, o.updated_at, "
        f"upper(btrim(o.content #>> CAST(:p{i} AS text[]))) AS value FROM service_orders o "
        f"WHERE o.source_system = :s{i} AND o.content #>> CAST(:p{i} AS text[]) IS NOT NULL{condition}"
    )


_SIDE = (
    "json_build_object('system', {t}.source_system, 'external_order_id', {t}.external_order_id, "
    "'hub_order_id', {t}.hub_order_id, 'country_code', {t}.country_code, 'bu_code', {t}.bu_code, "
    "'sales_channel', {t}.sales_channel, 'content', {t}.content, "
    "'personal', encode({t}.personal, 'base64'), 'data_key_id', {t}.data_key_id)"
)


def matched_orders(
    conn: Connection, specs: Sequence[KeySpec], start: datetime, end: datetime
) -> list[MatchedPair]:
    """Every pair of orders of two systems sharing a key, either of them written in ``[start, end)``."""
    if not specs:
        return []
    params: dict[str, Any] = {"start": start, "end": end}
    keys = " UNION ALL ".join(_key_select(i, spec, params) for i, spec in enumerate(specs))
    rows = conn.execute(
        text(
            f"WITH keys AS MATERIALIZED ({keys}) "
            f"SELECT a.reference, a.value, {_SIDE.format(t='l')}, {_SIDE.format(t='r')} "
            "FROM keys a JOIN keys b ON a.reference = b.reference AND a.value = b.value "
            "AND a.source_system < b.source_system "
            "JOIN service_orders l ON l.hub_order_id = a.hub_order_id "
            "JOIN service_orders r ON r.hub_order_id = b.hub_order_id "
            "WHERE ((a.updated_at >= :start AND a.updated_at < :end) "
            "OR (b.updated_at >= :start AND b.updated_at < :end)) "
            "AND l.erased_at IS NULL AND r.erased_at IS NULL "
            "ORDER BY a.reference, a.value, l.source_system, l.external_order_id, r.external_order_id"
        ),
        params,
    ).all()
    sides = [side for row in rows for side in (row[2], row[3])]
    opened = personal_data(conn).open_orders(
        conn,
        [
            (
                uuid.UUID(side["hub_order_id"]),
                side["content"],
                None if side["personal"] is None else base64.b64decode(side["personal"]),
                None if side["data_key_id"] is None else uuid.UUID(side["data_key_id"]),
            )
            for side in sides
        ],
    )
    for side, content in zip(sides, opened, strict=True):
        side["content"] = content
        del side["personal"], side["data_key_id"]
    return [
        MatchedPair(*row)
        for row in rows
        if isinstance(row[2]["content"], dict) and isinstance(row[3]["content"], dict)
    ]


def previous_cross_run(conn: Connection, before: datetime) -> uuid.UUID | None:
    """The last completed cross-system run started before ``before``."""
    value = conn.execute(
        text(
            "SELECT run_id FROM reconciliation_runs WHERE source_system = :system AND status = 'completed' "
            "AND started_at < :before ORDER BY started_at DESC LIMIT 1"
        ),
        {"system": CROSS_SYSTEM, "before": before},
    ).scalar_one_or_none()
    return value if isinstance(value, uuid.UUID) else None


def record_conflicts(
    conn: Connection,
    run_id: uuid.UUID,
    rows: Sequence[ConflictRow],
    at: datetime,
    previous: uuid.UUID | None,
) -> None:
    """Keep a run's conflicts; one open in the previous run keeps its ``first_seen_at``."""
    if not rows:
        return
    documents = [
        {
            "reference": r.pair.reference,
            "value": r.pair.value,
            "ls": r.pair.left["system"],
            "le": r.pair.left["external_order_id"],
            "lh": r.pair.left["hub_order_id"],
            "rs": r.pair.right["system"],
            "re": r.pair.right["external_order_id"],
            "rh": r.pair.right["hub_order_id"],
            "country": r.pair.left.get("country_code"),
            "bu": r.pair.left.get("bu_code"),
            "channel": r.pair.left.get("sales_channel"),
            "categories": list(r.categories),
            "differences": r.differences,
        }
        for r in rows
    ]
    conn.execute(
        text(
            "INSERT INTO cross_system_conflicts (run_id, reference, reference_value, left_system, "
            "left_external_order_id, left_hub_order_id, right_system, right_external_order_id, "
            "right_hub_order_id, country_code, bu_code, sales_channel, categories, differences, "
            "first_seen_at) "
            "SELECT :run_id, d->>'reference', d->>'value', d->>'ls', d->>'le', CAST(d->>'lh' AS uuid), "
            "d->>'rs', d->>'re', CAST(d->>'rh' AS uuid), d->>'country', d->>'bu', d->>'channel', "
            "ARRAY(SELECT jsonb_array_elements_text(d->'categories')), d->'differences', "
            "coalesce((SELECT p.first_seen_at FROM cross_system_conflicts p WHERE p.run_id = :previous "
            "AND p.reference = d->>'reference' AND p.left_hub_order_id = CAST(d->>'lh' AS uuid) "
            "AND p.right_hub_order_id = CAST(d->>'rh' AS uuid)), :at) "
            "FROM jsonb_array_elements(CAST(:docs AS jsonb)) AS d"
        ),
        {"run_id": run_id, "previous": previous, "at": at, "docs": json.dumps(documents, default=str)},
    )


def conflicts(conn: Connection, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """A run's conflicts as dicts (column → value), the longest open first."""
    rows = conn.execute(
        text(
            "SELECT reference, reference_value, left_system, left_external_order_id, left_hub_order_id, "
            "right_system, right_external_order_id, right_hub_order_id, country_code, bu_code, "
            "sales_channel, categories, differences, first_seen_at FROM cross_system_conflicts "
            "WHERE run_id = :run_id ORDER BY first_seen_at, reference, left_external_order_id, "
            "right_external_order_id"
        ),
        {"run_id": run_id},
    )
    return [dict(row._mapping) for row in rows]


def conflict_counts_by(conn: Connection, run_id: uuid.UUID, dimension: str) -> dict[str, int]:
    """A run's conflicts counted by ``country_code``, ``bu_code``, ``sales_channel`` or ``category``."""
    column = {
        "country_code": "c.country_code",
        "bu_code": "c.bu_code",
        "sales_channel": "c.sales_channel",
        "category": "k.category",
    }.get(dimension)
    if column is None:
        raise ValueError(f"cannot count conflicts by {dimension!r}")
    rows = conn.execute(
        text(
            f"SELECT coalesce({column}, 'unknown') AS v, count(*) FROM cross_system_conflicts c "
            + ("CROSS JOIN LATERAL unnest(c.categories) AS k(category) " if dimension == "category" else "")
            + "WHERE c.run_id = :run_id GROUP BY v ORDER BY v"
        ),
        {"run_id": run_id},
    )
    return {value: int(count) for value, count in rows}


def set_run_figures(conn: Connection, run_id: uuid.UUID, figures: dict[str, Any]) -> None:
    """Keep the operational figures a run computed."""
    conn.execute(
        text("UPDATE reconciliation_runs SET figures = CAST(:figures AS jsonb) WHERE run_id = :run_id"),
        {"run_id": run_id, "figures": json.dumps(figures, default=str)},
    )


def run_figures(conn: Connection, run_id: uuid.UUID) -> dict[str, Any] | None:
    """The operational figures kept with a run, if any."""
    value = conn.execute(
        text("SELECT figures FROM reconciliation_runs WHERE run_id = :run_id"), {"run_id": run_id}
    ).scalar_one_or_none()
    return value if isinstance(value, dict) else None
