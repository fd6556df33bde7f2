"""``saleshub mappings validate|test|preview|impact|schema|deploy|history|rollback|diff|explain`` and
``saleshub api openapi``: the data stewards' commands and the HTTP contract.

Check every mapping file at once, run the golden samples with field-level differences, see what one
payload becomes, see what an edit would change over stored events, regenerate the editor schema of
the mapping-file format, and deploy, compare and roll back mapping revisions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from adapters.registry import AdapterRegistry
from saleshub.commands.common import database, fail
from saleshub.commands.revisions import (
    deploy_mappings,
    deployed_catalog,
    diff_mappings,
    explain_mapping,
    load_issues,
    mapping_history,
    mapping_uses,
    rollback_mappings,
)
from saleshub.console import err, out
from saleshub.errors import DataError, MappingError, MappingLoadError, SalesHubError
from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.personal import review_personal_data
from saleshub.mapping.schema import mapping_file_schema
from saleshub.platform.settings import Settings
from saleshub.stewards.goldens import CaseResult, discover, render, run_case
from saleshub.stewards.impact import ImpactReport, mapping_impact

__all__ = [
    "api_app",
    "impact",
    "mappings_app",
    "openapi",
    "preview",
    "run_goldens",
    "schema",
    "validate",
]

mappings_app = typer.Typer(
    help="Check, test and preview the steward-owned mapping files.", no_args_is_help=True
)
mappings_app.command("deploy")(deploy_mappings)
mappings_app.command("history")(mapping_history)
mappings_app.command("rollback")(rollback_mappings)
mappings_app.command("diff")(diff_mappings)
mappings_app.command("explain")(explain_mapping)
mappings_app.command("uses")(mapping_uses)


_CandidateDir = Annotated[
    Path | None,
    typer.Option("--mapping", "--dir", help="a mappings directory [default: the deployed revision]"),
]
_MappingsDir = Annotated[
    Path | None,
    typer.Option("--dir", help="mappings directory [default: SALESHUB_MAPPINGS_DIR or ./mappings]"),
]


def _catalog(directory: Path | None) -> MappingCatalog:
    path = directory or Settings().mappings_dir
    try:
        return MappingCatalog.load(path)
    except MappingLoadError as exc:
        load_issues(exc)
        raise typer.Exit(1) from None
    except SalesHubError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


@mappings_app.command("validate")
def validate(directory: _MappingsDir = None) -> None:
    """Load and check every mapping file and crosswalk; list every problem; exit 1 on any.

    A rule that copies personal data into a non-personal field is a problem unless it says
    ``personal_data: {allowed: true, reason: ...}``; those rules are listed.
    """
    catalog = _catalog(directory)
    table = Table("system", "mapping", "revision", "content hash", "file", title="Mappings OK")
    for compiled in catalog:
        identity = compiled.identity
        table.add_row(
            identity.system, identity.name, identity.revision, identity.content_hash[:12], identity.file
        )
    out.print(table)
    acknowledged = review_personal_data(catalog).acknowledged
    if acknowledged:
        # Where personal data sits outside the personal fields, for whoever reviews or protects it.
        listed = Table(
            "rule",
            "field",
            "source path",
            "reason",
            title="Personal data in non-personal fields (acknowledged)",
        )
        for rule in acknowledged:
            where = f"{rule.file}:{rule.line}" if rule.line is not None else rule.file
            listed.add_row(where, rule.target, rule.path, rule.reason)
        out.print(listed)


def _show_result(result: CaseResult, verbose: bool) -> None:
    case = result.case
    label = f"{case.system}/{case.name}"
    if result.missing_expected:
        out.print(
            f"[yellow]NEW [/yellow] {label}: no {case.expected.name} yet (run with --update, then review)"
        )
        return
    if result.passed:
        if verbose:
            out.print(f"[green]PASS[/green] {label}")
        return
    out.print(f"[red]FAIL[/red] {label}")
    table = Table("field", "expected", "actual", show_lines=False)
    for difference in result.differences:
        table.add_row(
            difference.field,
            json.dumps(difference.expected, ensure_ascii=False),
            json.dumps(difference.actual, ensure_ascii=False),
        )
    out.print(table)


@mappings_app.command("test")
def run_goldens(
    systems: Annotated[list[str] | None, typer.Argument(help="only these systems")] = None,
    directory: _MappingsDir = None,
    samples: Annotated[Path | None, typer.Option(help="golden samples directory")] = None,
    update: Annotated[bool, typer.Option("--update", help="write actual output as expected")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="list passing cases too")] = False,
) -> None:
    """Run every golden sample through its mapping and show field-level differences."""
    catalog = _catalog(directory)
    registry = AdapterRegistry.default()
    samples_dir = samples or Settings().samples_dir
    results: list[CaseResult] = []
    for case in discover(samples_dir, systems):
        try:
            adapter = registry.create(case.system, catalog)
        except SalesHubError as exc:
            err.print(f"[red]error:[/red] {case.payload}: {exc}")
            raise typer.Exit(1) from None
        result = run_case(case, adapter)
        if update and not result.passed:
            text = json.dumps(result.actual, ensure_ascii=False, indent=2) + "\n"
            case.expected.write_text(text, encoding="utf-8")
            out.print(f"[yellow]WROTE[/yellow] {case.expected}")
            continue
        results.append(result)
        _show_result(result, verbose)
    failed = [r for r in results if not r.passed]
    passed = len(results) - len(failed)
    colour = "red" if failed else "green"
    out.print(f"[{colour}]{passed} passed, {len(failed)} failed[/{colour}]")
    if not results and not update:
        err.print(f"[red]error:[/red] no golden samples found in {samples_dir}")
        raise typer.Exit(1)
    if failed:
        raise typer.Exit(1)


@mappings_app.command("preview")
def preview(
    system: Annotated[str, typer.Argument(help="source system, e.g. pyxis")],
    file: Annotated[Path, typer.Argument(help="payload file, or - for standard input")],
    directory: _CandidateDir = None,
) -> None:
    """Show the canonical order one payload becomes (deployed revision), or every error that stops it."""
    try:
        body = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None
    catalog = deployed_catalog(directory)
    limit = Settings().web.max_body_bytes
    try:
        adapter = AdapterRegistry.default().create(system, catalog, max_body_bytes=limit)
    except SalesHubError as exc:
        raise fail(str(exc), 2) from None
    try:
        translation = adapter.translate(body)
    except MappingError as exc:
        err.print(f"[red bold]{len(exc.errors)} error(s)[/red bold] mapping {file} with {exc.mapping}")
        table = Table("canonical field", "source", "problem", "value")
        for error in exc.errors:
            value = repr(error.value) if error.has_value else "(no value)"
            table.add_row(error.target, error.source, error.rule, value)
        err.print(table)
        raise typer.Exit(1) from None
    except DataError as exc:
        err.print(f"[red]rejected:[/red] {exc}")
        raise typer.Exit(1) from None
    rendered: dict[str, Any] = render(translation)
    rendered["mapping"] = {
        "label": translation.mapped.mapping.label,
        "content_hash": translation.mapped.mapping.content_hash,
    }
    rendered["fingerprint"] = translation.mapped.order.fingerprint()
    sys.stdout.write(json.dumps(rendered, ensure_ascii=False, indent=2) + "\n")


@mappings_app.command("schema")
def schema(
    output: Annotated[Path | None, typer.Option(help="write to this file instead of standard output")] = None,
) -> None:
    """Print the JSON Schema of the mapping-file format (for editors)."""
    text = json.dumps(mapping_file_schema(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}")


def _print_impact(report: ImpactReport, last: int) -> None:
    out.print(
        f"[bold]{report.system}[/bold]: {report.events} orders compared (the newest event of each of "
        f"the last {last} orders)\n"
        f"  deployed:  {report.current_mapping or '(no successful mapping)'}\n"
        f"  candidate: {report.candidate_mapping or '(no successful mapping)'}"
    )
    out.print(
        f"unchanged {report.unchanged}, [yellow]changed {report.changed}[/yellow], "
        f"[red]newly failing {report.newly_failing}[/red], "
        f"[green]newly mapped {report.newly_mapped}[/green], "
        f"still failing {report.still_failing}"
        + (f", without raw body {report.missing_body}" if report.missing_body else "")
    )
    if report.field_counts:
        table = Table("canonical field", "orders changed", "examples (order: before → after)")
        for target, count in report.field_counts.most_common():
            examples = "\n".join(
                f"{ex.external_order_id}: {ex.before} → {ex.after}" for ex in report.examples[target]
            )
            table.add_row(target, str(count), examples)
        out.print(table)
    for example in report.failure_examples:
        out.print(f"[red]would fail:[/red] {example}", soft_wrap=True)


@mappings_app.command("impact")
def impact(
    system: Annotated[str, typer.Argument(help="source system, e.g. pyxis")],
    mapping: Annotated[Path, typer.Option("--mapping", help="candidate mappings directory")],
    last: Annotated[int, typer.Option("--last", min=1, max=1_000_000, help="how many recent orders")] = 1000,
) -> None:
    """Map the last N orders' newest events with the deployed revision and a candidate; orders changed."""
    deployed = deployed_catalog(None)
    candidate = _catalog(mapping)
    registry = AdapterRegistry.default()
    limit = Settings().web.max_body_bytes
    try:
        current_adapter = registry.create(system, deployed, max_body_bytes=limit)
        candidate_adapter = registry.create(system, candidate, max_body_bytes=limit)
    except SalesHubError as exc:
        raise fail(str(exc), 2) from None
    with database() as db, db.engine.connect() as conn:
        report = mapping_impact(conn, current_adapter, candidate_adapter, last)
    _print_impact(report, last)


api_app = typer.Typer(help="The HTTP interface's contract.", no_args_is_help=True)


@api_app.command("openapi")
def openapi(
    output: Annotated[Path | None, typer.Option(help="write to this file instead of standard output")] = None,
    operator_api: Annotated[
        bool,
        typer.Option("--operator-api", help="the document of a hub with the console on (with /api/v1)"),
    ] = False,
) -> None:
    """Print the OpenAPI document: webhooks and health (contracts/openapi.json), or with the operator API.

    ``--operator-api`` adds ``/api/v1``, served only when the console is configured
    (contracts/operator-api.json).
    """
    from saleshub.receive.app import create_app

    described = create_app()
    if operator_api:
        from saleshub.console.app import operator_routers

        for router in operator_routers():
            described.include_router(router)
    text = json.dumps(described.openapi(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}")
