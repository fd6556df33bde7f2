"""Runs over time: listing them and comparing two runs of a system (new, resolved, oldest open)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection

from reconciliation.model import Finding, Kind, RunComparison, RunSummary, Window
from saleshub.errors import InvalidRequestError, NotFoundError
from saleshub.store import findings, runs

__all__ = ["compare_runs", "finding_of", "list_runs", "load_run", "resolve_run", "summary_of"]

#: The shortest id prefix accepted for a run (``saleshub reconcile runs`` may show ids cut short).
_MIN_PREFIX = 4
_HEX = set("0123456789abcdef-")


def summary_of(stored: runs.StoredRun) -> RunSummary:
    """The typed summary of a stored run."""
    return RunSummary(
        run_id=stored.run_id,
        source_system=stored.source_system,
        window=Window(start=stored.window_start, end=stored.window_end),
        grace_seconds=stored.grace_seconds,
        manifest=stored.manifest,
        status=stored.status,
        started_at=stored.started_at,
        finished_at=stored.finished_at,
        counts=stored.counts,
        stats=stored.stats,
        error=stored.error,
    )


def finding_of(row: dict[str, Any]) -> Finding:
    """The typed finding of a stored finding row (fingerprints are left in the store)."""
    values = {k: v for k, v in row.items() if k not in ("source_fingerprint", "hub_fingerprint")}
    values["field_differences"] = values.get("field_differences") or []
    return Finding.model_validate(values)


def list_runs(conn: Connection, *, system: str | None = None, limit: int = 20) -> list[RunSummary]:
    """The newest runs first."""
    return [summary_of(stored) for stored in runs.recent_runs(conn, system=system, limit=limit)]


def resolve_run(conn: Connection, given: str, what: str = "RUN") -> uuid.UUID:
    """The run a whole id or the start of one names; else an ``InvalidRequestError`` (not an id or a
    prefix, or one several runs start with) or a ``NotFoundError`` saying why."""
    text = given.strip().lower()
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    if len(text.replace("-", "")) < _MIN_PREFIX or not set(text) <= _HEX:
        raise InvalidRequestError(
            f"{what} must be a run id or its first {_MIN_PREFIX} or more characters "
            f"(saleshub reconcile runs lists them); got {given!r}"
        )
    found = runs.run_ids_starting(conn, text)
    if not found:
        raise NotFoundError(
            f"no reconciliation run starts with {given!r} (saleshub reconcile runs lists them)"
        )
    if len(found) > 1:
        listed = ", ".join(str(run_id) for run_id in found[:4])
        raise InvalidRequestError(f"{given!r} starts several runs ({listed}, …); give more characters")
    return found[0]


def load_run(conn: Connection, run_id: uuid.UUID) -> RunSummary:
    """One run, or a ``NotFoundError`` naming the id that does not exist."""
    stored = runs.run(conn, run_id)
    if stored is None:
        raise NotFoundError(f"no reconciliation run {run_id} (saleshub reconcile runs lists them)")
    return summary_of(stored)


def compare_runs(conn: Connection, run_a: uuid.UUID, run_b: uuid.UUID) -> RunComparison:
    """Run B against run A: what is new in B, what was resolved since A, the oldest still open."""
    summary_a, summary_b = load_run(conn, run_a), load_run(conn, run_b)
    changes = findings.open_findings_since(conn, run_a, run_b)

    def typed(rows: list[dict[str, Any]]) -> list[Finding]:
        return [Finding(**row) for row in rows]

    still_open = [f for f in typed(changes["open"] + changes["new"]) if f.kind != Kind.INVALID_MANIFEST_ROW]
    oldest = min(still_open, key=lambda f: f.first_seen_at, default=None)
    return RunComparison(
        run_a=summary_a,
        run_b=summary_b,
        new=typed(changes["new"]),
        resolved=typed(changes["resolved"]),
        still_open=len(changes["open"]),
        oldest_open=oldest,
    )
