"""``saleshub orders list|show``: the orders that landed, and one order's versions and events."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from canonical.enums import OrderStatus, SalesChannel
from saleshub.commands.common import database, fail, parse_time, parse_uuid
from saleshub.commands.events import events_table
from saleshub.console import err, out
from saleshub.store import queries

__all__ = ["explain_order", "list_orders", "orders_app", "show_order"]

orders_app = typer.Typer(help="Canonical orders in the store.", no_args_is_help=True)


@orders_app.command("list")
def list_orders(
    system: Annotated[str | None, typer.Option(help="only this sales system")] = None,
    channel: Annotated[SalesChannel | None, typer.Option(help="only this sales channel")] = None,
    country: Annotated[str | None, typer.Option(help="only this country (ISO code, e.g. ES)")] = None,
    status: Annotated[OrderStatus | None, typer.Option(help="only orders in this status")] = None,
    since: Annotated[str | None, typer.Option(help="updated at or after (ISO 8601)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """The most recently updated orders: which orders landed, from where, in which state."""
    after = parse_time(since, "--since")
    with database() as db, db.engine.connect() as conn:
        rows = queries.orders(
            conn,
            system=system,
            channel=channel.value if channel else None,
            country=country.upper() if country else None,
            status=status.value if status else None,
            since=after,
            limit=limit,
        )
    table = Table(
        "updated (UTC)", "order", "country", "BU", "store", "channel", "service", "status", "v.", "hub id"
    )
    for row in rows:
        table.add_row(
            f"{row.updated_at:%Y-%m-%d %H:%M:%S}",
            f"{row.source_system}:{row.external_order_id}",
            row.country_code,
            row.bu_code,
            row.store_code or "",
            row.sales_channel,
            row.service_type,
            row.status,
            str(row.version_no),
            str(row.hub_order_id),
        )
    out.print(table)
    if not rows:
        out.print("no orders match")


@orders_app.command("show")
def show_order(
    order: Annotated[str, typer.Argument(help="hub order id, or SYSTEM:EXTERNAL_ORDER_ID")],
    content: Annotated[
        bool, typer.Option("--json", help="print only the current canonical order, as JSON")
    ] = False,
) -> None:
    """An order with every version (and the mapping that made it) and every event about it."""
    hub_order_id = None if ":" in order else parse_uuid(order, "ORDER")
    with database() as db, db.engine.connect() as conn:
        if hub_order_id is None:
            system, external_id = order.split(":", 1)
            row = queries.find_order(conn, system=system, external_id=external_id)
        else:
            row = queries.find_order(conn, hub_order_id=hub_order_id)
        if row is None:
            raise fail(f"no order {order}")
        erased = _erased_note(row)
        if content:  # for a pipe into jq: the JSON alone (the note, if any, on standard error)
            if erased:
                err.print(erased)
            sys.stdout.write(json.dumps(row.content, ensure_ascii=False, indent=2) + "\n")
            return
        versions = queries.order_versions(conn, row.hub_order_id)
        events = queries.order_events(conn, row.hub_order_id)
    out.print(
        f"[bold]{row.source_system}:{row.external_order_id}[/bold]  hub id {row.hub_order_id}\n"
        f"{row.country_code} {row.bu_code} store {row.store_code or '-'}  {row.sales_channel}  "
        f"{row.service_type}  status [bold]{row.status}[/bold]  version {row.version_no}  "
        f"source version {row.source_version if row.source_version is not None else '-'}\n"
        f"mapping {row.mapping}  fingerprint {row.fingerprint}  updated {row.updated_at:%Y-%m-%d %H:%M:%S}"
        + (f"\n[yellow]{erased}[/yellow]" if erased else "")
    )
    table = Table(
        "version",
        "recorded (UTC)",
        "status",
        "source v.",
        "mapping",
        "event",
        "personal data",
        title="Versions",
    )
    for version in versions:
        table.add_row(
            str(version.version_no),
            f"{version.recorded_at:%Y-%m-%d %H:%M:%S}",
            version.status,
            str(version.source_version if version.source_version is not None else "-"),
            version.mapping,
            str(version.event_id),
            "erased" if version.erased else "kept",
        )
    out.print(table)
    out.print(events_table(events, with_system=False, title="Events"))


@orders_app.command("explain")
def explain_order(
    order: Annotated[
        str | None, typer.Argument(help="hub order id, or SYSTEM:EXTERNAL_ORDER_ID", show_default=False)
    ] = None,
    fields: Annotated[
        list[str] | None, typer.Argument(help="canonical fields (customer, lines.unit_price …); default all")
    ] = None,
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="version number (default: the newest)")
    ] = None,
    event: Annotated[
        str | None,
        typer.Option("--event", help="an event id instead (a quarantined event: up to its failure)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the lineage as JSON")] = False,
    show_personal: Annotated[
        bool, typer.Option("--show-personal-data", help="show personal values (needs --reason; it is logged)")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="why personal data is shown")] = None,
) -> None:
    """Why each field of a stored order has its value: source, transforms, crosswalk row, rule."""
    from saleshub.commands.lineage import print_lineage
    from saleshub.errors import SalesHubError
    from saleshub.stewards import lineage

    if event is not None and order is not None:  # with --event, every argument is a field
        fields, order = [order, *(fields or [])], None
    if (order is None) == (event is None):
        raise fail("give ORDER or --event ID", 2)
    if show_personal and not (reason or "").strip():
        raise fail('--show-personal-data needs --reason "..." (it is logged)', 2)
    catalogs = lineage.RevisionCatalogs()
    with database() as db, db.engine.connect() as conn:
        try:
            if event is not None:
                found = lineage.explain_event(
                    conn,
                    catalogs,
                    parse_uuid(event, "--event"),
                    fields=fields or (),
                    show_personal=show_personal,
                    reason=reason,
                )
            else:
                assert order is not None
                hub_order_id = lineage.find_order_id(conn, order)
                if hub_order_id is None:
                    raise fail(f"no order {order}")
                found = lineage.explain_version(
                    conn,
                    catalogs,
                    hub_order_id,
                    version=version,
                    fields=fields or (),
                    show_personal=show_personal,
                    reason=reason,
                )
        except SalesHubError as exc:
            raise fail(str(exc)) from None
    print_lineage(found, as_json)
    if not found.reproducible and not (found.event_status == "quarantined" and found.fields):
        raise typer.Exit(1)


def _erased_note(row: Any) -> str | None:
    """What to say of an order whose customer's personal data was erased (``None``: it was not)."""
    if not row.erased:
        return None
    when = f" on {row.erased_at:%Y-%m-%d %H:%M} UTC" if row.erased_at else ""
    return f"personal data erased{when}: the order's facts only (customer and address fields, notes gone)"
