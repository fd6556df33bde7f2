"""``saleshub privacy``: a data subject's erasure and export, and sealing rows written in clear."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from saleshub.actions.events import cli_actor
from saleshub.actions.privacy import Criteria, erase, export
from saleshub.commands.common import USAGE_ERROR, StopSignal, database, fail
from saleshub.console import err, out
from saleshub.errors import InvalidRequestError, SalesHubError
from saleshub.platform.settings import Settings
from saleshub.publish.outbox import Outbox
from saleshub.publish.schemas import EventSchemas
from saleshub.store.erasure import erasure_register
from saleshub.store.failures import database_errors
from saleshub.store.sealing import SEALED_TABLES, clear_counts, seal_batch

__all__ = ["encrypt_command", "erase_command", "erasures_command", "export_command", "privacy_app"]

privacy_app = typer.Typer(
    help="Personal data: erase or export a data subject's, seal rows written in clear.",
    no_args_is_help=True,
)

_Email = Annotated[list[str], typer.Option("--email", help="the subject's e-mail (repeatable)")]
_Phone = Annotated[list[str], typer.Option("--phone", help="the subject's phone, E.164 (repeatable)")]
_Reference = Annotated[
    list[str], typer.Option("--customer-ref", help="the subject's customer or loyalty reference (repeatable)")
]
_Linked = Annotated[
    list[int],
    typer.Option("--linked-customer", help="a linked customer's id (repeatable)"),
]


def _criteria(
    email: list[str],
    phone: list[str],
    ref: list[str],
    linked: list[int],
    orders: tuple[tuple[str, str], ...] = (),
) -> Criteria:
    return Criteria(tuple(email), tuple(phone), tuple(ref), tuple(linked), orders)


def _orders(given: list[str], register: Path | None) -> tuple[tuple[str, str], ...]:
    """``--order SYSTEM:ID`` values and the orders of a register file (``privacy erasures --json``)."""
    found: list[tuple[str, str]] = []
    for value in given:
        system, _, order = value.partition(":")
        if not system or not order:
            raise fail(
                f"--order takes SYSTEM:EXTERNAL_ORDER_ID (e.g. pyxis:PX-ES-2026-000123); got {value!r}",
                USAGE_ERROR,
            )
        found.append((system, order))
    if register is not None:
        try:
            erasures = json.loads(register.read_text(encoding="utf-8"))
            found += [(o["system"], o["external_order_id"]) for e in erasures for o in e["detail"]["orders"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise fail(
                f"{register} is not a register written by `saleshub privacy erasures --json` "
                f"({type(exc).__name__})",
                USAGE_ERROR,
            ) from None
    return tuple(found)


@privacy_app.command("erase")
def erase_command(
    email: _Email = [],  # noqa: B006  (Typer reads the default; it is never mutated)
    phone: _Phone = [],  # noqa: B006
    customer_ref: _Reference = [],  # noqa: B006
    linked_customer: _Linked = [],  # noqa: B006
    order_ref: Annotated[
        list[str], typer.Option("--order", help="an order, SYSTEM:EXTERNAL_ORDER_ID (repeatable)")
    ] = [],  # noqa: B006
    from_register: Annotated[
        Path | None,
        typer.Option(
            help="the orders of every erasure in this file (`privacy erasures --json`), after a restore"
        ),
    ] = None,
    reason: Annotated[str, typer.Option(help="the request's reference, e.g. its ticket number")] = "",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list what would be erased; change nothing")
    ] = False,
) -> None:
    """Erase a data subject: destroy the keys of its personal data; order facts stay."""
    settings = Settings()
    criteria = _criteria(email, phone, customer_ref, linked_customer, _orders(order_ref, from_register))
    outbox = Outbox(EventSchemas.load(settings.contracts_dir))
    with database(settings) as db:
        try:
            result = erase(
                db.engine, criteria, actor=cli_actor(), reason=reason, dry_run=dry_run, outbox=outbox
            )
        except InvalidRequestError as exc:
            raise fail(str(exc), USAGE_ERROR) from None
        except SalesHubError as exc:
            raise fail(str(exc)) from None
    subject = result.subject
    summary = subject.summary()
    if not subject.orders and not subject.unmapped_events:
        out.print("no order or event of the hub matches; nothing to erase")
        return
    verb = "would erase" if result.dry_run else "erased"
    per_system = ", ".join(f"{system} {count}" for system, count in summary["events_by_system"].items())
    out.print(
        f"{verb}: {summary['orders']} orders, {summary['events']} events ({per_system}), "
        f"{summary['data_keys']} data keys, {summary['linked_records']} linked customer records"
    )
    if len(subject.clusters) > 1:  # a household sharing a contact is two subjects
        out.print(
            f"[yellow]these orders belong to {len(subject.clusters)} linked customers "
            f"({', '.join(map(str, subject.clusters))}): people sharing an e-mail, phone or reference? "
            "Check before erasing; --linked-customer N names one (ids of the last linking run)[/yellow]"
        )
    for order in subject.orders:
        notes = [f"matched by {', '.join(subject.matched.get(order.hub_order_id, []))}"]
        cluster = subject.linked_customer.get(order.hub_order_id)
        notes.append(f"linked customer {cluster}" if cluster is not None else "not linked yet")
        if order.erased_at is not None:
            notes.append("already erased")
        name = f"{order.source_system}:{order.external_order_id}"
        out.print(f"  {name}  {order.hub_order_id}  {order.status}  ({'; '.join(notes)})")
    for event_id, kinds in subject.unmapped_events.items():
        out.print(
            f"  event {event_id} (no order: refused before mapping; its body holds the {', '.join(kinds)})"
        )
    if result.dry_run:
        out.print("dry run: nothing changed; run again without --dry-run, with --reason, to erase")
    else:
        announced = "; a customer_erased event is in the outbox" if subject.orders else ""
        out.print(f"erasure {result.erasure_id} recorded{announced}")


@privacy_app.command("export")
def export_command(
    email: _Email = [],  # noqa: B006
    phone: _Phone = [],  # noqa: B006
    customer_ref: _Reference = [],  # noqa: B006
    linked_customer: _Linked = [],  # noqa: B006
    reason: Annotated[str, typer.Option(help="the request's reference, e.g. its ticket number")] = "",
    output: Annotated[
        Path | None, typer.Option(help="write the JSON here (default: standard output)")
    ] = None,
) -> None:
    """Everything the hub holds about a data subject, as one JSON document (access request)."""
    criteria = _criteria(email, phone, customer_ref, linked_customer)
    # The file is opened first (mode 600 from the start): an export that cannot be written is
    # neither made nor recorded as made.
    handle = sys.stdout if output is None else _private_file(output)
    try:
        with database() as db:
            try:
                document = export(db.engine, criteria, actor=cli_actor(), reason=reason)
            except InvalidRequestError as exc:
                raise fail(str(exc), USAGE_ERROR) from None
            except SalesHubError as exc:
                raise fail(str(exc)) from None
    except BaseException:
        if output is not None:
            handle.close()
            output.unlink(missing_ok=True)
        raise
    handle.write(json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n")
    if output is not None:
        handle.close()
        out.print(f"wrote {output}: {len(document['orders'])} orders, {len(document['events'])} events")


def _private_file(path: Path) -> TextIO:
    """``path`` opened for writing, readable by its owner only; a usage error naming why not."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # an existing file keeps its mode otherwise
    except OSError as exc:
        raise fail(f"cannot write the export to {path}: {exc.strerror}", USAGE_ERROR) from None
    return os.fdopen(descriptor, "w", encoding="utf-8")


@privacy_app.command("encrypt")
def encrypt_command(
    batch: Annotated[int, typer.Option(min=1, max=50_000, help="rows per transaction")] = 2_000,
) -> None:
    """Seal the rows written in clear before encryption at rest; resumable, safe while the hub runs."""
    with database() as db, database_errors():
        with db.engine.connect() as conn:
            todo = clear_counts(conn)
        if not any(todo.values()):
            out.print("every row is sealed; nothing to do")
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        try:
            with Progress(*columns, console=out) as progress:
                for table in SEALED_TABLES:
                    task = progress.add_task(table, total=todo[table])
                    while True:
                        with db.engine.begin() as conn:
                            done = seal_batch(conn, table, batch)
                        if not done:
                            break
                        progress.advance(task, done)
        except StopSignal:
            err.print("stopped: every batch sealed so far is committed; run `saleshub privacy encrypt` again")
            raise
    out.print("sealed: " + ", ".join(f"{todo[t]} {t}" for t in SEALED_TABLES))


@privacy_app.command("erasures")
def erasures_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="the whole register as JSON (keep it beside backups)")
    ] = False,
) -> None:
    """The erasure register: who erased, when, why, how much, and which orders (never the values)."""
    with database() as db, database_errors(), db.engine.connect() as conn:
        register = erasure_register(conn)
    if as_json:
        sys.stdout.write(json.dumps(register, ensure_ascii=False, indent=2, default=str) + "\n")
        return
    table = Table(
        "#", "when (UTC)", "who", "reason", "searched by", "orders", "events", "keys", title="Erasures"
    )
    for entry in register:
        table.add_row(
            str(entry["erasure_id"]),
            f"{entry['erased_at']:%Y-%m-%d %H:%M}",
            entry["subject"],
            entry["reason"],
            ", ".join(entry["criteria"]),
            str(entry["orders"]),
            str(entry["events"]),
            str(entry["data_keys"]),
        )
    out.print(table)
