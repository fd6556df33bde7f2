"""``saleshub mappings deploy|history|rollback|diff|explain``: mapping revisions as data.

A steward edits files in a directory, checks them (``validate``, ``test``, ``impact``), then
``deploy``s them: the files are checked again, stored whole as a new revision in PostgreSQL, and
every running hub process switches to it within seconds, without a restart. ``history`` lists the
revisions, ``diff`` says field by field what changed between two, ``rollback`` deploys an older
one's files again, and ``explain`` shows how a canonical field is produced.

``deployed_catalog`` is what ``preview``, ``impact`` and ``events replay`` map with unless they are
given ``--mapping DIR``: the deployed revision, or the files on disk when none was deployed yet.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import Engine

from saleshub.actions import mappings as actions
from saleshub.actions.events import cli_actor
from saleshub.commands.common import database, fail
from saleshub.console import err, out
from saleshub.errors import MappingLoadError, SalesHubError
from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.revision import MappingFiles
from saleshub.platform.settings import Settings
from saleshub.stewards.deployment import load_deployed
from saleshub.stewards.explain import explain
from saleshub.stewards.revision_diff import diff_revisions
from saleshub.store import mapping_revisions as store
from saleshub.store.failures import database_errors

__all__ = [
    "deploy_mappings",
    "deployed_catalog",
    "diff_mappings",
    "explain_mapping",
    "load_issues",
    "mapping_history",
    "mapping_uses",
    "rollback_mappings",
]

#: How long ``deploy`` waits for the running processes to report the new revision.
_SWITCH_WAIT_SECONDS = 15.0


def load_issues(exc: MappingLoadError) -> None:
    """Print every problem of a mapping load, one line each with file:line."""
    err.print(f"[red bold]{len(exc.issues)} problem(s) in the mappings[/red bold]")
    for issue in exc.issues:
        where = f"{issue.file}:{issue.line}" if issue.line else issue.file
        key = f" [cyan]{issue.key}[/cyan]:" if issue.key else ""
        err.print(f"  [bold]{where}[/bold]{key} {issue.message}", soft_wrap=True)


def deployed_catalog(directory: Path | None) -> MappingCatalog:
    """``directory``'s mappings if given, else the deployed revision (else the files on disk)."""
    try:
        if directory is not None:
            return MappingCatalog.load(directory)
        with database() as db:
            found = load_deployed(db.engine)
        if found is not None:
            return found[0]
        path = Settings().mappings_dir
        err.print(f"[yellow]no mapping revision deployed yet: using the files in {path}[/yellow]")
        return MappingCatalog.load(path)
    except MappingLoadError as exc:
        load_issues(exc)
        raise typer.Exit(1) from None
    except SalesHubError as exc:
        raise fail(str(exc)) from None


def _wait_for_switch(engine: Engine, number: int) -> None:
    deadline = time.monotonic() + _SWITCH_WAIT_SECONDS
    while True:
        with database_errors(), engine.connect() as conn:
            live = store.live_processes(conn, within_seconds=30)
        behind = [p for p in live if p.mapping_revision != number]
        if not behind or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if not live:
        out.print("no hub process is running; each one maps with it from its start")
    elif behind:
        names = ", ".join(f"{p.process} (r{p.mapping_revision})" for p in behind)
        err.print(f"[yellow]not yet switched after {_SWITCH_WAIT_SECONDS:.0f} s: {names}[/yellow]")
    else:
        out.print(f"[green]{len(live)} running hub process(es) switched to r{number}[/green]")


def deploy_mappings(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="mappings directory [default: SALESHUB_MAPPINGS_DIR]")
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="why (shown in the history)")] = None,
    samples: Annotated[Path | None, typer.Option(help="golden samples directory")] = None,
) -> None:
    """Check the mappings, run the golden samples, then deploy them to every running hub process."""
    settings = Settings()
    path = directory or settings.mappings_dir
    with database(settings) as db:
        try:
            result = actions.deploy_files(
                db.engine, path, samples or settings.samples_dir, message, cli_actor()
            )
        except MappingLoadError as exc:
            load_issues(exc)
            raise typer.Exit(1) from None
        except SalesHubError as exc:
            raise fail(str(exc)) from None
        candidate, number = result.candidate, result.revision
        passed = sum(1 for r in candidate.results if r.passed)
        out.print(f"{len(candidate.catalog)} mappings valid; {passed} golden sample(s) pass")
        if number is None:
            out.print("nothing to deploy: the deployed revision has exactly these files")
            return
        out.print(f"[bold]deployed r{number}[/bold] ({candidate.files.content_hash[:12]}) from {path}")
        _wait_for_switch(db.engine, number)


def mapping_history(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="how many revisions")] = 20,
) -> None:
    """Deployed mapping revisions, newest (the one in use) first."""
    with database() as db, database_errors(), db.engine.connect() as conn:
        revisions = actions.history(conn, limit)
        live = store.live_processes(conn, within_seconds=30)
    if not revisions:
        out.print("no mapping revision deployed yet (`saleshub mappings deploy`, or start `saleshub serve`)")
        return
    running: dict[int | None, int] = {}
    for process in live:
        running[process.mapping_revision] = running.get(process.mapping_revision, 0) + 1
    table = Table(
        "revision", "deployed (UTC)", "by", "hash", "mappings", "message", "processes", title="Mappings"
    )
    newest = revisions[0][0]
    for revision, acted in revisions:
        note = revision.message or ""
        if revision.rollback_of is not None and f"r{revision.rollback_of}" not in note:
            note = f"rollback to r{revision.rollback_of}; {note}".rstrip("; ")
        table.add_row(
            f"r{revision.revision}" + (" (deployed)" if revision is newest else ""),
            f"{revision.deployed_at:%Y-%m-%d %H:%M:%S}",
            acted.name if acted is not None else "",
            revision.content_hash[:12],
            "\n".join(revision.mappings.values()),
            note,
            str(running.get(revision.revision, "")),
        )
    out.print(table)


def _revision_number(text: str) -> int:
    try:
        return actions.parse_revision(text)
    except SalesHubError as exc:
        raise fail(str(exc)) from None


def rollback_mappings(
    revision: Annotated[str, typer.Argument(help="the revision to restore, e.g. r3")],
    message: Annotated[str | None, typer.Option("--message", "-m", help="why")] = None,
) -> None:
    """Deploy an earlier revision's files again (as a new revision, so the history stays whole)."""
    number = _revision_number(revision)
    with database() as db:
        try:
            deployed = actions.rollback_to(db.engine, number, message, cli_actor())
        except MappingLoadError as exc:
            load_issues(exc)
            raise typer.Exit(1) from None
        except SalesHubError as exc:
            raise fail(str(exc)) from None
        out.print(f"[bold]deployed r{deployed}[/bold]: the files of r{number}")
        _wait_for_switch(db.engine, deployed)


def diff_mappings(
    old: Annotated[str, typer.Argument(help="a revision (r3), or a mappings directory")],
    new: Annotated[str, typer.Argument(help="a revision (r4), or a mappings directory")],
) -> None:
    """What changed from OLD to NEW, field by field and crosswalk row by row."""
    files = [_files(which) for which in (old, new)]
    changes = diff_revisions(files[0], files[1])
    if not changes:
        out.print(f"{old} and {new} have the same mappings")
        return
    for change in changes:
        out.print(
            f"[bold]{change.file}[/bold] [cyan]{change.subject}[/cyan]: {change.description}", soft_wrap=True
        )


def _files(which: str) -> dict[str, str]:
    path = Path(which)
    if path.is_dir():
        try:
            return MappingFiles.read(path).files
        except SalesHubError as exc:
            raise fail(str(exc)) from None
    number = _revision_number(which)
    with database() as db:
        try:
            return actions.revision_files(db.engine, number)
        except SalesHubError as exc:
            raise fail(str(exc)) from None


def explain_mapping(
    system: Annotated[str, typer.Argument(help="source system, e.g. pyxis")],
    field: Annotated[str | None, typer.Argument(help="canonical field, e.g. lines.unit_price")] = None,
    name: Annotated[str, typer.Option(help="mapping name")] = "order",
    mapping: Annotated[
        Path | None, typer.Option("--mapping", help="a mappings directory instead of the deployed revision")
    ] = None,
) -> None:
    """How a canonical field is produced: source, transforms, lookup, type, default, generated code."""
    catalog = deployed_catalog(mapping)
    try:
        compiled = catalog.get(system, name)
        found = explain(compiled, field)
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    out.print(f"[bold]{compiled.identity.label}[/bold] ({compiled.identity.file})")
    if field is None:
        table = Table("canonical field", "reads", "transforms", "lookup", "type", "default", "required")
        for item in found:
            table.add_row(
                item.target,
                item.reads,
                item.transforms,
                item.lookup,
                item.type,
                item.default,
                "yes" if item.required else "",
            )
        out.print(table)
        return
    item = found[0]
    for label, value in (
        ("field", item.target),
        ("reads", item.reads),
        ("transforms", item.transforms),
        ("lookup", item.lookup),
        ("type", item.type),
        ("default", item.default),
        ("required", "yes" if item.required else "no"),
        ("only when", item.when),
    ):
        if value:
            out.print(f"[cyan]{label:>10}[/cyan]  {value}", soft_wrap=True)
    out.print("[cyan]generated code[/cyan]")
    out.print(item.code, markup=False, highlight=False, soft_wrap=True)


def mapping_uses(
    crosswalk: Annotated[
        str | None,
        typer.Argument(help="a crosswalk, e.g. channels (crosswalks/channels.csv)", show_default=False),
    ] = None,
    row: Annotated[int | None, typer.Argument(help="one row of it, by its line in the file")] = None,
    source_path: Annotated[
        str | None, typer.Option("--source-path", help="a source path instead, e.g. order.channel")
    ] = None,
    last: Annotated[int, typer.Option(min=1, max=1_000_000, help="how many recent orders to trace")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="print the answer as JSON")] = False,
) -> None:
    """Which canonical fields, and how many of the last N orders, depend on a crosswalk row or source path."""
    from saleshub.commands.lineage import print_uses
    from saleshub.stewards.lineage import RevisionCatalogs
    from saleshub.stewards.lineage_uses import crosswalk_uses, source_path_uses

    if (crosswalk is None) == (source_path is None):
        raise fail("give a CROSSWALK [ROW] or --source-path PATH (not both)", 2)
    catalogs = RevisionCatalogs()
    with database() as db, database_errors(), db.engine.connect() as conn:
        try:
            if crosswalk is not None:
                report = crosswalk_uses(conn, catalogs, crosswalk, row, last=last)
            else:
                assert source_path is not None
                report = source_path_uses(conn, catalogs, source_path, last=last)
        except SalesHubError as exc:
            raise fail(str(exc)) from None
    print_uses(report, as_json)
