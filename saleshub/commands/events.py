"""``saleshub events``: list, show, dismiss and replay recorded integration events."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import Connection

from saleshub.actions import events as actions
from saleshub.actions.events import event_record, first_error
from saleshub.commands.common import database, fail, parse_time, parse_uuid
from saleshub.console import out
from saleshub.errors import InvalidRequestError, SalesHubError
from saleshub.platform.settings import Settings
from saleshub.receive.replay import ReplaySelection
from saleshub.runtime import HubRuntime, tune_collector
from saleshub.store import queries
from saleshub.store.events import Status
from saleshub.store.queries import AnyRow

__all__ = [
    "dismiss_event",
    "events_app",
    "events_table",
    "first_error",
    "list_events",
    "replay",
    "resolve_event_id",
    "show_event",
]

events_app = typer.Typer(
    help="Recorded integration events: list, show, dismiss, replay.", no_args_is_help=True
)


def events_table(rows: Sequence[AnyRow], *, with_system: bool = True, title: str | None = None) -> Table:
    """Events as a table: when, id, system, transport, type, status, order version, mapping or error."""
    columns = ["received (UTC)", "event", "system", "order", "via", "type", "status", "v.", "mapping / error"]
    table = Table(*(c for c in columns if with_system or c != "system"), title=title)
    for row in rows:
        cells = [
            f"{row.received_at:%Y-%m-%d %H:%M:%S}",
            str(row.event_id),
            row.source_system,
            row.order_key or "",
            row.transport + (" ↻" if row.replay_of else ""),
            row.event_type or "",
            row.status + (" (replayed)" if row.superseded_by else ""),
            str(row.order_version_no or ""),
            first_error(row.errors) or (row.mapping or ""),
        ]
        table.add_row(*(cells if with_system else cells[:2] + cells[3:]))
    return table


@events_app.command("list")
def list_events(
    system: Annotated[str | None, typer.Option(help="only this sales system")] = None,
    status: Annotated[Status | None, typer.Option(help="only events with this status")] = None,
    since: Annotated[str | None, typer.Option(help="received at or after (ISO 8601)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """The newest events, with status, mapping and the first error of each."""
    after = parse_time(since, "--since")
    with database() as db, db.engine.connect() as conn:
        rows = queries.events(
            conn,
            system=system,
            status=status.value if status else None,
            since=after,
            limit=limit,
        )
    out.print(events_table(rows))


@events_app.command("show")
def show_event(
    event_id: Annotated[str, typer.Argument(help="the event's id, or its first characters")],
    body: Annotated[bool, typer.Option("--body", help="write the exact raw body to standard output")] = False,
) -> None:
    """Everything recorded about one event (or, with --body, its exact raw bytes)."""
    with database() as db, db.engine.connect() as conn:
        row = queries.event(conn, resolve_event_id(conn, event_id))
        if row is None:
            raise fail(f"no event {event_id}")
        record = event_record(conn, row)
    if body:
        if row.raw_body is None:
            raise fail(
                f"event {event_id} has no raw body (a replay, purged by retention, or its subject erased)"
            )
        sys.stdout.buffer.write(bytes(row.raw_body))
        return
    out.print_json(json.dumps(record, default=str, ensure_ascii=False))


def resolve_event_id(conn: Connection, text: str) -> uuid.UUID:
    """The event ``text`` names: a whole id, or an id prefix that only one event has (a malformed or
    ambiguous id is a usage error: exit 2)."""
    try:
        return actions.resolve_event_id(conn, text)
    except SalesHubError as exc:
        raise fail(str(exc), 2 if isinstance(exc, InvalidRequestError) else 1) from None


@events_app.command("dismiss")
def dismiss_event(
    event_id: Annotated[str, typer.Argument(help="the event's id, or its first characters")],
    reason: Annotated[str, typer.Option("--reason", help="why it is closed (kept with the event)")],
) -> None:
    """Close an open quarantined or failed event that is junk (a test message, a sender's mistake)."""
    with database() as db:
        with db.engine.connect() as conn:
            resolved = resolve_event_id(conn, event_id)
        try:
            previous = actions.dismiss_event(db.engine, resolved, reason, actions.cli_actor())
        except SalesHubError as exc:
            raise fail(str(exc)) from None
    out.print(f"event {resolved} dismissed (was {previous}): {reason.strip()}")


@events_app.command("replay")
def replay(
    event_id: Annotated[str | None, typer.Option("--event", help="only this event")] = None,
    system: Annotated[str | None, typer.Option(help="only this sales system")] = None,
    since: Annotated[str | None, typer.Option(help="received at or after (ISO 8601)")] = None,
    until: Annotated[str | None, typer.Option(help="received before (ISO 8601)")] = None,
    every_status: Annotated[
        bool, typer.Option("--all", help="replay every selected event, not only open quarantined/failed ones")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    mapping: Annotated[
        Path | None,
        typer.Option("--mapping", help="map with this mappings directory instead of the deployed revision"),
    ] = None,
) -> None:
    """Map stored events again with the deployed mapping revision (default: every open quarantined one).

    With ``--mapping DIR`` this command's own processor maps with DIR; stop other processors
    (``serve``, ``process``) first, or they may take some of the replays with the deployed revision.
    """
    selection = ReplaySelection(
        event_id=parse_uuid(event_id, "--event") if event_id else None,
        system=system,
        since=parse_time(since, "--since"),
        until=parse_time(until, "--until"),
        open_only=not every_status and event_id is None,
        limit=limit,
    )
    try:
        hub = HubRuntime.open(Settings(), mappings=mapping)
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    tune_collector()
    try:
        with Progress(console=out, transient=True) as progress:
            task = progress.add_task("replaying", total=None)
            summary = actions.replay_events(
                hub, selection, actions.cli_actor(), lambda n: progress.advance(task, n)
            )
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    finally:
        hub.close()
    rate = summary.replayed / summary.seconds if summary.seconds else 0.0
    out.print(
        f"selected {summary.selected}, replayed {summary.replayed} in {summary.seconds:.1f} s ({rate:,.0f}/s)"
    )
    for status, count in sorted(summary.statuses.items()):
        out.print(f"  {status}: {count}")
    if summary.missing_body:
        out.print(
            f"  [yellow]skipped {summary.missing_body} without a raw body "
            "(purged by retention, or its subject erased)[/yellow]"
        )
    if summary.statuses.get("quarantined") or summary.statuses.get("failed"):
        out.print("still failing: see `saleshub events list --status quarantined`")
