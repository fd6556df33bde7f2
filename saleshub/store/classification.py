"""The one-pass classification: a staged manifest against the system's orders of a window.

``classify`` compares the manifest with the system's orders in one statement: a hash join of the
manifest with the orders of the window (an index-only range scan of ``ix_service_orders_reconcile``),
a probe of the unique key for manifest rows the window lacks, one class per order, and the
discrepancies written as findings with since when they are open. ``classify_differing`` does the
same from the pairs a comparison outside PostgreSQL found differing (the run's comparison engine).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import sql
from sqlalchemy import Connection, text

from saleshub.store.manifest import MANIFEST_TABLE

__all__ = ["DIFFERING_COLUMNS", "ClassifyParams", "classify", "classify_differing"]


@dataclass(frozen=True, slots=True)
class ClassifyParams:
    """What one classification compares: the system, its window, and the times that exclude orders."""

    run_id: uuid.UUID
    system: str
    window_start: datetime
    window_end: datetime
    young_after: datetime  # orders updated at or after this (the grace period) are left out
    run_started: datetime  # orders written or updated at or after this changed during the run
    time_tolerance: timedelta
    previous_run: uuid.UUID | None


_HUB_COLUMNS = """o.external_order_id AS key, o.hub_order_id, o.source_version AS version,
    o.source_updated_at AS updated_at, o.fingerprint, o.updated_at AS written_at,
    o.country_code, o.bu_code, o.sales_channel"""

# One hash join of the manifest with the window's orders (an index-only scan: the columns compared
# are those of ix_service_orders_reconcile) keeps only the pairs that may differ: one side missing,
# versions or fingerprints unequal. Each of those few pairs then reads its order by key, which also
# finds the hub's copy of an order the window lacks (last updated before the window), and gets its
# class.
_CLASSIFY = f"""
WITH hw AS (
    SELECT o.external_order_id AS key, o.source_version AS version, o.source_updated_at AS updated_at,
           o.fingerprint
    FROM service_orders o
    WHERE o.source_system = :system AND o.source_updated_at >= :window_start
      AND o.source_updated_at < :window_end
),
differing AS MATERIALIZED (
    SELECT m.key AS m_key, m.version AS m_version, m.updated_at AS m_updated_at,
           m.fingerprint AS m_fp, m.country_code AS m_country, m.bu_code AS m_bu,
           m.sales_channel AS m_channel, hw.key AS w_key
    FROM {MANIFEST_TABLE} m
    FULL JOIN hw ON hw.key = m.key
    WHERE (hw.key IS NULL OR m.key IS NULL OR m.version IS DISTINCT FROM hw.version
           OR m.fingerprint <> hw.fingerprint
           OR (m.version IS NULL AND m.updated_at IS DISTINCT FROM hw.updated_at))
      AND (hw.key IS NOT NULL OR m.updated_at IS NULL
           OR (m.updated_at >= :window_start AND m.updated_at < :window_end))
),
{{classes}}"""

# From the differing pairs on: their orders read by key, one class each, the discrepancies written.
_CLASSES = f"""pairs AS (
    SELECT d.m_key, d.m_version, d.m_updated_at, d.m_fp, d.m_country, d.m_bu, d.m_channel,
           h.key AS h_key, h.hub_order_id AS h_id, h.version AS h_version,
           h.updated_at AS h_updated_at, h.fingerprint AS h_fp, h.written_at AS h_written_at,
           h.country_code AS h_country, h.bu_code AS h_bu, h.sales_channel AS h_channel
    FROM differing d
    LEFT JOIN LATERAL (
        SELECT {_HUB_COLUMNS} FROM service_orders o
        WHERE o.source_system = :system AND o.external_order_id = coalesce(d.w_key, d.m_key)
        LIMIT 1  -- the key is unique; the limit keeps this an index probe per differing pair
    ) h ON true
),
compared AS (
    SELECT p.*,
        CASE
            WHEN p.m_version IS NOT NULL AND p.h_version IS NOT NULL THEN sign(p.m_version - p.h_version)
            WHEN p.m_updated_at IS NOT NULL AND p.h_updated_at IS NOT NULL THEN
                CASE WHEN p.m_updated_at > p.h_updated_at + :tolerance THEN 1
                     WHEN p.m_updated_at < p.h_updated_at - :tolerance THEN -1 ELSE 0 END
            ELSE 0
        END AS newer
    FROM pairs p
),
classified AS (
    SELECT c.*,
        CASE
            WHEN c.h_written_at >= :run_started OR c.m_updated_at >= :run_started THEN 'in_flight'
            WHEN greatest(c.m_updated_at, c.h_updated_at) >= :young_after THEN 'young'
            WHEN c.h_key IS NULL THEN 'missing_in_hub'
            WHEN c.m_key IS NULL THEN 'missing_in_source'
            WHEN c.newer > 0 THEN 'hub_stale'
            WHEN c.newer < 0 THEN 'source_stale'
            WHEN c.m_fp IS NOT NULL AND c.m_fp <> c.h_fp THEN 'content_mismatch'
            ELSE 'same'
        END AS kind
    FROM compared c
),
written AS (
    INSERT INTO reconciliation_findings (
        run_id, kind, external_order_id, hub_order_id, country_code, bu_code, sales_channel,
        source_version, hub_version, source_updated_at, hub_updated_at, source_fingerprint,
        hub_fingerprint, first_seen_at)
    SELECT :run_id, d.kind, coalesce(d.m_key, d.h_key), d.h_id, coalesce(d.h_country, d.m_country),
        coalesce(d.h_bu, d.m_bu), coalesce(d.h_channel, d.m_channel), d.m_version, d.h_version,
        d.m_updated_at, d.h_updated_at, d.m_fp, d.h_fp, coalesce(prev.first_seen_at, :run_started)
    FROM classified d
    LEFT JOIN reconciliation_findings prev ON prev.run_id = :previous_run AND prev.kind = d.kind
        AND prev.external_order_id = coalesce(d.m_key, d.h_key)
    WHERE d.kind IN ('missing_in_hub', 'missing_in_source', 'hub_stale', 'source_stale', 'content_mismatch')
    RETURNING 1
)
SELECT kind,
       m_key IS NOT NULL AND (m_updated_at IS NULL
           OR (m_updated_at >= :window_start AND m_updated_at < :window_end)) AS listed,
       count(*)
FROM classified GROUP BY 1, 2
"""
_CLASSIFY = _CLASSIFY.replace("{classes}", _CLASSES)

#: The pairs a comparison outside PostgreSQL found differing (``DIFFERING_COLUMNS``), staged per run.
_DIFFERING_TABLE = "reconcile_differing"
#: A differing pair: the manifest's row (NULLs when the manifest lacks the order) and the key of
#: the window's order (NULL when the window lacks it).
DIFFERING_COLUMNS = (
    "m_key text, m_version bigint, m_updated_at timestamptz, m_fp bigint, m_country text, "
    "m_bu text, m_channel text, w_key text"
)
_CLASSIFY_DIFFERING = f"WITH differing AS (SELECT * FROM {_DIFFERING_TABLE}),\n{_CLASSES}"

_LISTED = f"""SELECT count(*) FROM {MANIFEST_TABLE}
WHERE updated_at IS NULL OR (updated_at >= :window_start AND updated_at < :window_end)"""


def _counted(rows: Sequence[Any], listed_total: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    listed_differing = 0
    for kind, listed, count in rows:
        counts[kind] = counts.get(kind, 0) + int(count)
        if listed and kind != "same":
            listed_differing += int(count)
    counts["same"] = listed_total - listed_differing
    return counts


def _bound(params: ClassifyParams) -> dict[str, Any]:
    return {
        "run_id": params.run_id,
        "system": params.system,
        "window_start": params.window_start,
        "window_end": params.window_end,
        "young_after": params.young_after,
        "run_started": params.run_started,
        "tolerance": params.time_tolerance,
        "previous_run": params.previous_run,
    }


def classify_differing(
    conn: Connection, params: ClassifyParams, differing: Iterable[Sequence[Any]], listed_total: int
) -> dict[str, int]:
    """Classify pairs found differing elsewhere (one tuple per ``DIFFERING_COLUMNS``); count by class.

    The comparison of the whole window ran outside PostgreSQL; only its differing pairs come here,
    are staged by ``COPY``, get their class and become findings exactly as in ``classify``.
    ``listed_total`` is the number of manifest rows of the window (for ``same``).
    """
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(
        sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
            sql.Identifier(_DIFFERING_TABLE), sql.SQL(DIFFERING_COLUMNS)
        )
    )
    with cursor.copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(_DIFFERING_TABLE))) as copy:
        for row in differing:
            copy.write_row(row)
    cursor.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(_DIFFERING_TABLE)))
    rows = conn.execute(text(_CLASSIFY_DIFFERING), _bound(params)).all()
    return _counted(rows, listed_total)


def classify(conn: Connection, params: ClassifyParams) -> dict[str, int]:
    """Classify every order of the window in one statement; write the discrepancies; count by class.

    Besides the discrepancy kinds the counts hold ``same`` (listed by the source for the window and
    equal in the hub), ``young`` (updated within the grace period) and ``in_flight`` (changed on
    either side while the run was under way).
    """
    rows = conn.execute(text(_CLASSIFY), _bound(params)).all()
    listed_total = conn.execute(
        text(_LISTED), {"window_start": params.window_start, "window_end": params.window_end}
    ).scalar_one()
    return _counted(rows, int(listed_total))
