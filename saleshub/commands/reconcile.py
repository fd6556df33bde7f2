"""``saleshub reconcile``: compare a source's manifest with the hub, list and compare runs, write reports."""

from __future__ import annotations

import sys
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine

from reconciliation.across import reconcile_across
from reconciliation.api import ApiManifestReader
from reconciliation.crossrefs import load_cross_references
from reconciliation.engine import reconcile
from reconciliation.heal import HealResult
from reconciliation.history import compare_runs, list_runs, resolve_run
from reconciliation.model import Finding, Kind, RunSummary, Window
from reconciliation.reports import build_report
from reconciliation.reports.across import (
    build_across_report,
)
from reconciliation.rules import SystemRules, load_rules
from reconciliation.sources import FileManifestReader, SourceManifestReader
from saleshub.actions.reconciliation import run_report
from saleshub.actions.reconciliation_wiring import api_reader, heal_from_source
from saleshub.actions.reconciliation_wiring import nightly as nightly_job
from saleshub.commands.common import database, fail, parse_time
from saleshub.console import err, out
from saleshub.errors import InvalidRequestError, MappingLoadError, SalesHubError
from saleshub.platform.logs import configure_logging
from saleshub.platform.settings import Settings
from saleshub.runtime import HubRuntime

__all__ = ["across", "compare", "nightly", "reconcile_app", "report", "rules", "run", "runs"]

reconcile_app = typer.Typer(
    help="Reconciliation: what a sales system says it sold against what the hub holds.", no_args_is_help=True
)

_FORMATS = ("html", "json", "csv")


def _rules_or_exit(directory: Path) -> None:
    try:
        load_rules(directory)
        load_cross_references(directory)
    except MappingLoadError as exc:
        err.print(f"[red bold]{len(exc.issues)} problem(s) in the reconciliation rules[/red bold]")
        for issue in exc.issues:
            err.print(f"  {issue}", soft_wrap=True)
        raise typer.Exit(1) from None


def _counts_table(run: RunSummary) -> Table:
    table = Table("kind", "orders", "meaning", title=f"Run {run.run_id} ({run.status})")
    for kind in Kind:
        count = run.counts.get(kind.value, 0)
        if count or list(Kind).index(kind) < 5:
            table.add_row(kind.label, f"{count:,}", kind.explanation)
    return table


class _Bar:
    """A Rich progress bar fed by the run's progress callback."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if phase not in self.tasks:
            for task in self.tasks.values():  # the earlier phases are done
                self.progress.update(task, total=1, completed=1)
            self.tasks[phase] = self.progress.add_task(phase, total=total)
        self.progress.update(self.tasks[phase], completed=done)


@reconcile_app.command("run")
def run(
    system: Annotated[str, typer.Argument(help="sales system, e.g. pyxis")],
    start: Annotated[str, typer.Option("--from", help="window start, ISO 8601 (UTC if no offset)")],
    end: Annotated[str, typer.Option("--to", help="window end (exclusive)")],
    source_file: Annotated[
        Path | None, typer.Option("--source-file", help="the source's manifest: .csv or .jsonl")
    ] = None,
    heal: Annotated[
        bool, typer.Option("--heal", help="re-fetch and record what is missing, stale or changed")
    ] = False,
    grace: Annotated[
        int | None, typer.Option("--grace", min=0, help="grace period in minutes [default: from the rules]")
    ] = None,
) -> None:
    """Compare SYSTEM's manifest of a window with the hub; store the run; print the counts.

    Without --source-file the manifest is read from SYSTEM's API (a system of
    SALESHUB_POLLERS__SYSTEMS, through its poller's client); --heal then records again, from the
    API, the orders found missing in or stale in the hub, and any record of the window whose content
    the hub lacks (changed under the same change time).
    """
    settings = Settings()
    window_start, window_end = parse_time(start, "--from"), parse_time(end, "--to")
    if window_start is None or window_end is None or window_end <= window_start:
        raise fail("--to must be after --from", 2)
    if (heal or source_file is None) and system not in settings.pollers.systems:
        what = "--heal" if heal else "a manifest without --source-file"
        polled = ", ".join(sorted(settings.pollers.systems)) or "none"
        raise fail(
            f"{what} reads {system}'s API, but SALESHUB_POLLERS__SYSTEMS has no entry {system!r} "
            f"(polled systems: {polled})",
            2,
        )
    _rules_or_exit(settings.mappings_dir)
    rules = load_rules(settings.mappings_dir).for_system(system)
    if grace is not None:
        rules = rules.model_copy(update={"grace_period_minutes": grace})
    window = Window(start=window_start, end=window_end)
    with ExitStack() as stack:
        if heal or source_file is None:
            hub = _open_hub(settings)
            stack.callback(hub.close)
            engine = hub.database.engine
            try:
                api: ApiManifestReader | None = api_reader(hub, system)
            except SalesHubError as exc:
                raise fail(str(exc), 2) from None
        else:
            hub, api, engine = None, None, stack.enter_context(database(settings)).engine
        reader: SourceManifestReader
        if source_file is None:
            assert api is not None  # set above whenever there is no file
            reader = api
        else:
            try:
                reader = FileManifestReader(system, source_file)
            except SalesHubError as exc:
                raise fail(str(exc), 2) from None
        run_id = _reconcile(engine, reader, window, rules)
        with engine.connect() as conn:
            report = build_report(conn, run_id)
        out.print(_counts_table(report.run))
        stats = report.run.stats
        out.print(
            f"{stats.get('compared_manifest_rows', 0):,} orders listed, {stats.get('same', 0):,} identical; "
            f"left out: {stats.get('young', 0):,} too recent, {stats.get('in_flight', 0):,} changing during "
            f"the run; {stats.get('tolerated', 0):,} differences within the rules' tolerances"
        )
        if heal and hub is not None and api is not None:
            try:
                healed = heal_from_source(hub, api, run_id, window)
            except SalesHubError as exc:
                raise fail(f"healing failed: {exc}") from None
            out.print(_healed_line(healed))
    out.print(f"report: saleshub reconcile report {run_id} --format html --output report.html")


def _open_hub(settings: Settings) -> HubRuntime:
    try:
        return HubRuntime.open(settings)
    except SalesHubError as exc:
        raise fail(str(exc)) from None


def _reconcile(engine: Engine, reader: SourceManifestReader, window: Window, rules: SystemRules) -> uuid.UUID:
    columns = (TextColumn("{task.description:<20}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err, transient=True) as progress:
            return reconcile(engine, reader, window, rules, progress=_Bar(progress))
    except SalesHubError as exc:
        raise fail(f"the run failed: {exc}") from None


def _healed_line(healed: HealResult) -> str:
    line = (
        f"healed: {healed.recorded:,} of {healed.wanted:,} missing or stale orders recorded again from the "
        f"source ({healed.repeated:,} already recorded, {healed.refused:,} refused)"
    )
    if healed.unreported:
        line += (
            f"; {healed.unreported:,} more records whose content the hub lacked "
            "(changed under the same change time) recorded"
        )
    if healed.not_found:
        shown = ", ".join(healed.not_found[:5]) + (" …" if len(healed.not_found) > 5 else "")
        line += f"; not listed by the source any more: {shown}"
    return line


@reconcile_app.command("nightly")
def nightly() -> None:
    """Reconcile the previous UTC day of every polled system against its API, once (a CronJob's task).

    The same job ``saleshub serve`` and ``saleshub poll serve`` schedule at SALESHUB_POLLERS__RECONCILE_AT;
    exit 1 when a system's run failed (the others still ran).
    """
    settings = Settings()
    if not settings.pollers.systems:
        raise fail("no polled system to reconcile: SALESHUB_POLLERS__SYSTEMS is empty", 2)
    configure_logging(settings)  # the run's log lines in the format of SALESHUB_LOG_FORMAT, masked
    hub = _open_hub(settings)
    try:
        try:
            outcome = nightly_job(hub)()
        except SalesHubError as exc:
            raise fail(str(exc)) from None
    finally:
        hub.close()
    for system, result in sorted(outcome.items()):
        out.print(f"{system}: {result if result.startswith('failed') else 'run ' + result}")
    if any(result.startswith("failed") for result in outcome.values()):
        raise fail("the nightly reconciliation failed for a system (see above); the others ran")


@reconcile_app.command("runs")
def runs(
    system: Annotated[str | None, typer.Option(help="only this system")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
) -> None:
    """The newest runs with their counts."""
    with database() as db, db.engine.connect() as conn:
        listed = list_runs(conn, system=system, limit=limit)
    table = Table("run", "system", "window (UTC)", "started (UTC)", "status", "discrepancies", "by kind")
    for r in listed:
        table.add_row(
            str(r.run_id),
            r.source_system,
            f"{r.window.start:%Y-%m-%d %H:%M} – {r.window.end:%Y-%m-%d %H:%M}",
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            r.status if r.error is None else f"{r.status}: {r.error[:60]}",
            f"{r.discrepancies:,}",
            ", ".join(f"{k} {v:,}" for k, v in sorted(r.counts.items())),
        )
    out.print(table)


def _finding_rows(title: str, findings: list[Finding]) -> Table:
    table = Table("order", "kind", "country", "open since", title=title)
    for f in findings[:50]:
        table.add_row(f.external_order_id, f.kind.label, f.country_code or "", f"{f.first_seen_at:%Y-%m-%d}")
    if len(findings) > 50:
        table.caption = f"and {len(findings) - 50:,} more"
    return table


@reconcile_app.command("compare")
def compare(
    run_a: Annotated[str, typer.Argument(help="the earlier run (its id, or the id's first characters)")],
    run_b: Annotated[str, typer.Argument(help="the later run (its id, or the id's first characters)")],
) -> None:
    """What is new in RUN_B, what was resolved since RUN_A, and the oldest discrepancy still open."""
    with database() as db, db.engine.connect() as conn:
        try:
            a, b = resolve_run(conn, run_a, "RUN_A"), resolve_run(conn, run_b, "RUN_B")
            comparison = compare_runs(conn, a, b)
        except SalesHubError as exc:  # a malformed or ambiguous run id is a usage error
            raise fail(str(exc), 2 if isinstance(exc, InvalidRequestError) else 1) from None
    out.print(
        f"[bold]{len(comparison.new):,} new[/bold], [green]{len(comparison.resolved):,} resolved[/green], "
        f"{comparison.still_open:,} still open"
    )
    if comparison.oldest_open is not None:
        oldest = comparison.oldest_open
        out.print(
            f"oldest open: {oldest.external_order_id} ({oldest.kind.label}) "
            f"since {oldest.first_seen_at:%Y-%m-%d %H:%M}"
        )
    out.print(_finding_rows("New", comparison.new))
    out.print(_finding_rows("Resolved", comparison.resolved))


@reconcile_app.command("report")
def report(
    run_id: Annotated[str, typer.Argument(help="the run (its id, or the id's first characters)")],
    fmt: Annotated[str, typer.Option("--format", help="html, json or csv")] = "html",
    output: Annotated[Path | None, typer.Option(help="write here instead of standard output")] = None,
) -> None:
    """Write a run's report: a self-contained HTML page, JSON, or CSV (one row per discrepancy)."""
    if fmt not in _FORMATS:
        raise fail(f"--format must be one of {', '.join(_FORMATS)}; got {fmt!r}", 2)
    with database() as db, db.engine.connect() as conn:
        try:
            rendered = run_report(conn, resolve_run(conn, run_id), fmt)
        except SalesHubError as exc:  # a malformed or ambiguous run id is a usage error
            raise fail(str(exc), 2 if isinstance(exc, InvalidRequestError) else 1) from None
    if output is None:
        sys.stdout.write(rendered)
    else:
        output.write_text(rendered, encoding="utf-8")
        out.print(f"wrote {output}")


@reconcile_app.command("rules")
def rules(
    directory: Annotated[Path | None, typer.Option("--dir", help="mappings directory")] = None,
) -> None:
    """Check the reconciliation rules and cross-references (mappings/); problems with file:line."""
    path = directory or Settings().mappings_dir
    _rules_or_exit(path)
    loaded = load_rules(path)
    table = Table("system", "grace (min)", "amount tol.", "time tol. (s)", "equivalent statuses", "key")
    for name in ["(default)", *sorted(loaded.systems)]:
        r = loaded.defaults if name == "(default)" else loaded.for_system(name)
        table.add_row(
            name,
            str(r.grace_period_minutes),
            str(r.amount_tolerance),
            str(r.time_tolerance_seconds),
            "; ".join("=".join(group) for group in r.status_equivalences),
            r.manifest.key_separator.join(r.manifest.key_columns),
        )
    out.print(table)
    references = load_cross_references(path)
    shared = Table("cross-reference", "system", "field", "when", title="Orders reported by several systems")
    for name, reference in sorted(references.references.items()):
        for system, key in sorted(reference.systems.items()):
            when = "" if key.when is None else f"{key.when.field} in {', '.join(key.when.in_)}"
            shared.add_row(name, system, key.field, when)
    out.print(shared)
    compared = references.compare
    out.print(
        f"compared on {', '.join(compared.fields)}; amount tolerance {compared.amount_tolerance}, "
        f"time tolerance {compared.time_tolerance_seconds} s"
    )


@reconcile_app.command("across")
def across(
    start: Annotated[str, typer.Option("--from", help="window start, ISO 8601 (UTC if no offset)")],
    end: Annotated[str, typer.Option("--to", help="window end (exclusive)")],
    full_relink: Annotated[
        bool, typer.Option("--full-relink", help="forget every customer link and link all orders again")
    ] = False,
) -> None:
    """Orders reported by several systems, one customer across channels, and the operational figures."""
    settings = Settings()
    window_start, window_end = parse_time(start, "--from"), parse_time(end, "--to")
    if window_start is None or window_end is None or window_end <= window_start:
        raise fail("--to must be after --from", 2)
    _rules_or_exit(settings.mappings_dir)
    references = load_cross_references(settings.mappings_dir)
    window = Window(start=window_start, end=window_end)
    with database(settings) as db:
        try:
            run_id = reconcile_across(
                db.engine,
                references,
                window,
                full_relink=full_relink,
                progress=lambda phase, count: err.print(f"{phase}: {count:,}"),
            )
        except SalesHubError as exc:
            raise fail(f"the run failed: {exc}") from None
        with db.engine.connect() as conn:
            data = build_across_report(conn, run_id, links=0)
    stats = data.run.stats
    table = Table("what", "count", title=f"Run {run_id} ({data.run.status})")
    table.add_row("orders reported by two systems", f"{stats.get('cross_system_pairs', 0):,}")
    table.add_row("of which in conflict", f"{len(data.conflicts):,}")
    for category, count in data.conflicts_by_category.items():
        table.add_row(f"  with {category} differences", f"{count:,}")
    table.add_row("customer records linked", f"{stats.get('customer_records_linked', 0):,}")
    table.add_row("customer links made", f"{stats.get('customer_links', 0):,}")
    table.add_row("customers", f"{stats.get('customers', 0):,}")
    table.add_row("customers in several channels", f"{stats.get('cross_channel_customers', 0):,}")
    out.print(table)
    out.print(f"report: saleshub reconcile report {run_id} --format html --output across.html")
