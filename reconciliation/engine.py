"""One reconciliation run: a source's manifest against the hub, for a system and a time window.

The run's row is written first (status ``running``, committed), then one transaction compares and
stores the findings; its commit completes the run. A CSV manifest file of plainly readable rows
without orders goes through the comparison engine (``reconciliation.comparison``: DuckDB reads the
file and joins it with a snapshot of the hub's window; only the differing pairs come back to be
classified). Any other manifest is staged in PostgreSQL, which reports unusable rows by line and
duplicated keys, classifies every order of the window in one statement, and explains the differing
orders field by field. A run
that fails is rolled back and its row marked ``failed`` with the error, which is raised again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from reconciliation import comparison
from reconciliation.fields import field_differences, parse_order
from reconciliation.model import Kind, Window
from reconciliation.recorded import recorded_run
from reconciliation.rules import SystemRules
from reconciliation.sources import SourceManifestReader
from saleshub.store import classification, findings, manifest, manifest_checks, queries, runs, snapshot

__all__ = ["ERASED_RULE", "Progress", "reconcile"]

#: Told what the run is doing: a phase name, how much of it is done and of how much (if known).
Progress = Callable[[str, int, int | None], None]

_EXPLAINED = (Kind.CONTENT_MISMATCH, Kind.HUB_STALE, Kind.SOURCE_STALE)


def _quiet(_phase: str, _done: int, _total: int | None) -> None:
    return None


def _counted(chunks: Iterable[bytes], progress: Progress, total: int | None) -> Iterator[bytes]:
    done = 0
    for chunk in chunks:
        done += len(chunk)
        progress("load manifest", done, total)
        yield chunk


def _fill_fingerprints(conn: Connection) -> None:
    values: list[tuple[int, int | None, str | None]] = []
    for line, document in manifest_checks.manifest_orders_without_fingerprint(conn):
        order = parse_order(document)
        values.append((line, None, order) if isinstance(order, str) else (line, order.fingerprint(), None))
    manifest_checks.set_manifest_fingerprints(conn, values)


#: What a finding about an erased order says instead of field differences.
ERASED_RULE = "its customer's personal data was erased: compared by version and fingerprint only"


def _explain(
    conn: Connection, run_id: uuid.UUID, system: str, rules: SystemRules, counts: dict[str, int]
) -> None:
    differing = [f for f in findings.findings(conn, run_id) if f["kind"] in _EXPLAINED]
    keys = [f["external_order_id"] for f in differing]
    hub_docs = queries.order_contents(conn, system, keys)
    source_docs = manifest_checks.manifest_orders(conn, keys)
    erased = queries.erased_orders(conn, system, [key for key in keys if key not in hub_docs])
    explained: dict[str, list[dict[str, Any]]] = {}
    tolerated: list[str] = []
    for finding in differing:
        key = finding["external_order_id"]
        if key in erased:
            explained[key] = [{"field": "order", "hub": None, "source": None, "rule": ERASED_RULE}]
            continue
        if key not in hub_docs or key not in source_docs:
            continue
        hub, source = parse_order(hub_docs[key]), parse_order(source_docs[key])
        if isinstance(source, str) or isinstance(hub, str):
            problem = source if isinstance(source, str) else hub
            explained[key] = [{"field": "order", "hub": None, "source": None, "rule": problem}]
            continue
        differences = field_differences(hub, source, rules)
        if not differences and finding["kind"] == Kind.CONTENT_MISMATCH:
            tolerated.append(key)
        else:
            explained[key] = [d.model_dump() for d in differences]
    findings.set_field_differences(conn, run_id, explained)
    findings.drop_findings(conn, run_id, Kind.CONTENT_MISMATCH, tolerated)
    if tolerated:
        counts[Kind.CONTENT_MISMATCH] -= len(tolerated)
        counts["tolerated"] = len(tolerated)


def _staged_findings(
    problems: Sequence[manifest_checks.ManifestProblem], duplicates: Sequence[manifest_checks.DuplicateKey]
) -> list[findings.StagedFinding]:
    staged = [
        findings.StagedFinding(Kind.INVALID_MANIFEST_ROW, p.key, f"line {p.line}: {p.problem}")
        for p in problems
    ]
    staged += [
        findings.StagedFinding(
            Kind.DUPLICATE_IN_SOURCE,
            d.key,
            f"listed {len(d.lines)} times, on lines {', '.join(map(str, d.lines))}",
        )
        for d in duplicates
    ]
    return staged


def _classify_params(
    conn: Connection, system: str, window: Window, rules: SystemRules, started: datetime, run_id: uuid.UUID
) -> classification.ClassifyParams:
    return classification.ClassifyParams(
        run_id=run_id,
        system=system,
        window_start=window.start,
        window_end=window.end,
        young_after=min(started - rules.grace_period, window.end),
        run_started=started,
        time_tolerance=rules.time_tolerance,
        previous_run=runs.previous_run_id(conn, system, started),
    )


def _compared(
    conn: Connection,
    run_id: uuid.UUID,
    reader: SourceManifestReader,
    window: Window,
    rules: SystemRules,
    started: datetime,
    progress: Progress,
    layout: manifest.ManifestLayout,
) -> tuple[dict[str, int], dict[str, int]] | None:
    """The run through the comparison engine, or ``None`` if the manifest must be staged in the store."""
    progress("load manifest", 0, reader.size())
    result = comparison.compare(
        reader,
        layout,
        window,
        timezone=snapshot.session_time_zone(conn),
        snapshot=lambda out: snapshot.copy_window(conn, reader.system, window.start, window.end, out),
        progress=lambda phase: progress(phase, 0, None),
    )
    if result is None:
        return None
    # The engine takes only manifests without orders, so there are no field differences to explain.
    duplicates = [manifest_checks.DuplicateKey(d.key, d.lines) for d in result.duplicates]
    findings.record_findings(conn, run_id, _staged_findings([], duplicates), started)
    classes = classification.classify_differing(
        conn,
        _classify_params(conn, reader.system, window, rules, started, run_id),
        result.differing,
        result.listed,
    )
    return _totals(classes, len(duplicates), 0, result.loaded, result.compared)


def _totals(
    classes: dict[str, int], duplicates: int, problems: int, loaded: int, compared: int, tolerated: int = 0
) -> tuple[dict[str, int], dict[str, int]]:
    counts = {
        kind.value: classes.get(kind.value, 0)
        for kind in (*_EXPLAINED, Kind.MISSING_IN_HUB, Kind.MISSING_IN_SOURCE)
    }
    counts[Kind.DUPLICATE_IN_SOURCE] = duplicates
    counts[Kind.INVALID_MANIFEST_ROW] = problems
    stats = {
        "manifest_rows": loaded,
        "compared_manifest_rows": compared,
        "same": classes.get("same", 0),
        "young": classes.get("young", 0),
        "in_flight": classes.get("in_flight", 0),
        "tolerated": tolerated,
    }
    return counts, stats


def _run(
    conn: Connection,
    run_id: uuid.UUID,
    reader: SourceManifestReader,
    window: Window,
    rules: SystemRules,
    started: datetime,
    progress: Progress,
) -> tuple[dict[str, int], dict[str, int]]:
    layout = manifest.ManifestLayout(
        key_columns=tuple(rules.manifest.key_columns), key_separator=rules.manifest.key_separator
    )
    compared = _compared(conn, run_id, reader, window, rules, started, progress, layout)
    if compared is not None:
        counts, stats = compared
        return {k: v for k, v in counts.items() if v}, stats
    size = reader.size()
    loaded = manifest.stage_manifest(
        conn,
        reader.format,
        lambda: _counted(reader.chunks(window), progress, size),
        layout,
        reader.description.removeprefix("file "),
    )
    progress("check manifest", 0, None)
    bad_rows, without_fingerprint = manifest_checks.manifest_health(conn)
    if without_fingerprint:
        _fill_fingerprints(conn)
    problems = manifest_checks.manifest_problems(conn) if bad_rows or without_fingerprint else []
    duplicates = manifest_checks.duplicate_keys(conn)
    findings.record_findings(conn, run_id, _staged_findings(problems, duplicates), started)
    compared_rows = loaded - manifest_checks.drop_unusable_rows(conn, duplicates, problems=bool(problems))
    progress("classify", 0, None)
    classes = classification.classify(
        conn, _classify_params(conn, reader.system, window, rules, started, run_id)
    )
    counts, _ = _totals(classes, len(duplicates), len(problems), loaded, compared_rows)
    progress("explain differences", 0, None)
    _explain(conn, run_id, reader.system, rules, counts)
    tolerated = counts.pop("tolerated", 0)
    _, stats = _totals(classes, len(duplicates), len(problems), loaded, compared_rows, tolerated)
    return {k: v for k, v in counts.items() if v}, stats


def reconcile(
    engine: Engine,
    reader: SourceManifestReader,
    window: Window,
    rules: SystemRules,
    *,
    now: datetime | None = None,
    progress: Progress = _quiet,
) -> uuid.UUID:
    """Compare ``reader``'s manifest of ``window`` with the hub, store the run, and return its id."""
    started = now or datetime.now(UTC)
    with recorded_run(
        engine,
        system=reader.system,
        window=window,
        grace_seconds=int(rules.grace_period.total_seconds()),
        manifest=reader.description,
        started=started,
    ) as (run_id, conn):
        counts, stats = _run(conn, run_id, reader, window, rules, started, progress)
        runs.finish_run(conn, run_id, counts, stats)
    return run_id
