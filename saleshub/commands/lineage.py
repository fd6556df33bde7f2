"""How ``saleshub orders explain`` and ``saleshub mappings uses`` print their answers.

The answers themselves come from ``saleshub.stewards.lineage`` and ``saleshub.stewards.lineage_uses``
(which an operator API can serve as JSON just the same); this module only writes them for a terminal.
"""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape

from saleshub.console import out
from saleshub.stewards.lineage import NOT_REPRODUCIBLE, FieldLineage, OrderLineage, jsonable
from saleshub.stewards.lineage_uses import UsesReport

__all__ = ["print_lineage", "print_uses"]


def _shown(value: Any) -> str:
    return escape(json.dumps(jsonable(value), ensure_ascii=False))


def _step_line(step: Any) -> str:
    indent = "  " * (step.depth + 1)
    text = escape(step.text)
    if step.kind == "read" and step.line is not None:
        text += f" (line {step.line})"
    line = f"{indent}[cyan]{step.kind:<9}[/cyan] {text}"
    if step.has_value and step.kind not in ("part",):
        line += f" → {_shown(step.value)}"
    if step.row is not None:
        cells = ", ".join(f"{k}={v}" for k, v in (step.row_cells or {}).items())
        line += f"\n{indent}          [dim]row {step.crosswalk}:{step.row}: {escape(cells)}[/dim]"
    return line


def _field(found: FieldLineage) -> None:
    value = "" if found.group else f" = [bold]{_shown(found.value)}[/bold]"
    masked = " [dim](personal data, masked)[/dim]" if found.masked else ""
    out.print(
        f"[bold]{escape(found.target)}[/bold]{value}{masked}  [dim]{escape(found.rule)}[/dim]", soft_wrap=True
    )
    for step in found.steps:
        out.print(_step_line(step), soft_wrap=True)


def print_lineage(lineage: OrderLineage, as_json: bool) -> None:
    """The lineage as text, or as JSON with ``as_json``."""
    if as_json:
        out.print_json(json.dumps(lineage.as_json(), ensure_ascii=False))
        return
    version = f"version {lineage.version_no}" if lineage.version_no is not None else "no order version"
    if lineage.latest_version is not None:
        version += f" of {lineage.latest_version}"
    out.print(
        f"[bold]{escape(lineage.order or '(order unknown)')}[/bold]  {version}  event {lineage.event_id} "
        f"({lineage.event_status})\nmapping {escape(lineage.mapping or '-')}"
        + (f"  revision r{lineage.revision}" if lineage.revision is not None else "")
        + (f"  file {lineage.mapping_file}" if lineage.mapping_file else ""),
        soft_wrap=True,
    )
    if not lineage.reproducible:
        reason = lineage.reason.removeprefix(f"{NOT_REPRODUCIBLE}: ")
        headline = NOT_REPRODUCIBLE if reason != lineage.reason else "no trace"
        out.print(f"[red bold]{headline}[/red bold]: {escape(reason)}", soft_wrap=True)
        for difference in lineage.differences:
            stored = "(absent)" if difference.stored is None else _shown(difference.stored)
            now = "(absent)" if difference.now is None else _shown(difference.now)
            out.print(f"  {escape(difference.target)}: stored {stored}, now {now}", soft_wrap=True)
        return
    if lineage.event_status == "quarantined":
        out.print(f"[yellow]quarantined[/yellow]: {escape(lineage.reason)}", soft_wrap=True)
    else:
        out.print(
            "[green]reproduced: mapping the stored raw body again gives exactly the stored version[/green]"
        )
    if lineage.personal_shown:
        out.print("[yellow]personal data shown (the reason is logged)[/yellow]")
    for found in lineage.fields:
        _field(found)
    if lineage.errors:
        out.print(f"[bold]{len(lineage.errors)} field error(s)[/bold]")
        for error in lineage.errors:
            out.print(
                f"  {escape(error['target'])} (from {escape(error['source'])}): {escape(error['rule'])}; "
                f"value {escape(error['value'])}",
                soft_wrap=True,
            )


def print_uses(report: UsesReport, as_json: bool) -> None:
    """The fields and orders that depend on a crosswalk (row) or source path."""
    if as_json:
        out.print_json(json.dumps(report.as_json(), ensure_ascii=False))
        return
    out.print(f"[bold]{escape(report.subject)}[/bold] in mapping revision r{report.revision}")
    if not report.fields:
        out.print("no canonical field depends on it")
        return
    for use in report.fields:
        out.print(
            f"  {use.mapping}  [bold]{use.target}[/bold]  {escape(use.how)}  [dim]{use.rule}[/dim]",
            soft_wrap=True,
        )
    out.print(
        f"{report.depending} of the last {report.examined} orders depend on it"
        + (f" ({report.unreadable} could not be traced)" if report.unreadable else "")
    )
    for target, count in report.by_field.most_common():
        out.print(f"  {target}: {count}")
