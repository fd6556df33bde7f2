"""``saleshub privacy``: a data subject's erasure and export, and sealing rows written in clear."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from saleshub.actions.events import cli_actor
from saleshub.actions.privacy import Criteria, erase, export
from saleshub.commands.common import USAGE_ERROR, database, fail
from saleshub.console import out
from saleshub.errors import InvalidRequestError, SalesHubError
from saleshub.platform.settings import Settings
from saleshub.publish.outbox import Outbox
from saleshub.publish.schemas import EventSchemas
from saleshub.store.failures import database_errors
from saleshub.store.sealing import SEALED_TABLES, clear_counts, seal_batch

__all__ = ["encrypt_command", "erase_command", "export_command", "privacy_app"]

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


def _criteria(email: list[str], phone: list[str], ref: list[str], linked: list[int]) -> Criteria:
    return Criteria(tuple(email), tuple(phone), tuple(ref), tuple(linked))


@privacy_app.command("erase")
def erase_command(
    email: _Email = [],  # noqa: B006  (Typer reads the default; it is never mutated)
    phone: _Phone = [],  # noqa: B006
    customer_ref: _Reference = [],  # noqa: B006
    linked_customer: _Linked = [],  # noqa: B006
    reason: Annotated[str, typer.Option(help="the request's reference, e.g. its ticket number")] = "",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list what would be erased; change nothing")
    ] = False,
) -> None:
    """Erase a data subject: destroy the keys of its personal data; order facts stay."""
    settings = Settings()
    criteria = _criteria(email, phone, customer_ref, linked_customer)
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
    for order in subject.orders:
        notes = [f"matched by {', '.join(subject.matched.get(order.hub_order_id, []))}"]
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
        with Progress(*columns, console=out) as progress:
            for table in SEALED_TABLES:
                task = progress.add_task(table, total=todo[table])
                while True:
                    with db.engine.begin() as conn:
                        done = seal_batch(conn, table, batch)
                    if not done:
                        break
                    progress.advance(task, done)
    out.print("sealed: " + ", ".join(f"{todo[t]} {t}" for t in SEALED_TABLES))
