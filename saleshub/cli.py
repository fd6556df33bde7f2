"""The ``saleshub`` command line (Typer + Rich).

The commands live in ``saleshub.commands`` and are loaded when one is run, not before: ``COMMANDS``
names each command's module and help line, so ``saleshub --help`` imports none of them, and
``saleshub status`` imports what status needs, not the web server, Alembic's migrations of
``serve``, Kafka or the reconciliation engine. ``saleshub mappings …`` are the data stewards'
commands (``saleshub.commands.mappings``); the others are the operators'.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import sys
from typing import Any, Final, NamedTuple

import typer
from typer import _click as click  # the click that Typer 0.29 vendors and builds commands with
from typer._click.exceptions import UsageError
from typer.core import TyperCommand, TyperGroup, TyperOption

from saleshub.console import err
from saleshub.errors import SalesHubError

__all__ = ["COMMANDS", "LazyCommand", "app", "load_command", "main"]

log = logging.getLogger(__name__)


def _type_of_option(option: TyperOption, ctx: Any) -> str | None:
    """The type column of ``--help``: none for a flag (``--update``, not ``--update <bool>``)."""
    return None if option.is_flag else _TYPER_TYPE_COLUMN(option, ctx)


# Typer 0.29 prints "<bool>" beside every flag, which reads as if the flag took a value.
_TYPER_TYPE_COLUMN = TyperOption.display_type_rich
TyperOption.display_type_rich = _type_of_option  # type: ignore[method-assign,assignment]


class LazyCommand(NamedTuple):
    """Where a command is defined (a Typer app or a function) and its help line for ``saleshub --help``."""

    module: str
    attribute: str
    help: str


#: Every command of ``saleshub``, in the order ``--help`` lists them. A test keeps each help line
#: equal to the command's own.
COMMANDS: Final[dict[str, LazyCommand]] = {
    "serve": LazyCommand(
        "saleshub.commands.serve",
        "serve",
        "Run the hub: migrate, then receive webhooks (embedded PostgreSQL unless a URL is set).",
    ),
    "status": LazyCommand(
        "saleshub.commands.serve",
        "status",
        "How the hub stands: database, schema, events of the last 24 hours, open problems, partitions.",
    ),
    "process": LazyCommand(
        "saleshub.commands.process",
        "process",
        "Map recorded events into orders until stopped (several processors share the work).",
    ),
    "mappings": LazyCommand(
        "saleshub.commands.mappings",
        "mappings_app",
        "Check, test and preview the steward-owned mapping files.",
    ),
    "db": LazyCommand("saleshub.commands.db", "db_app", "Database schema, partitions and retention."),
    "events": LazyCommand(
        "saleshub.commands.events",
        "events_app",
        "Recorded integration events: list, show, dismiss, replay.",
    ),
    "orders": LazyCommand("saleshub.commands.orders", "orders_app", "Canonical orders in the store."),
    "kafka": LazyCommand(
        "saleshub.commands.kafka",
        "kafka_app",
        "Publish the outbox to Kafka, consume order events, create topics.",
    ),
    "webhooks": LazyCommand(
        "saleshub.commands.webhooks", "webhooks_app", "Send signed webhooks to a running hub."
    ),
    "poll": LazyCommand("saleshub.commands.poll", "poll_app", "The pollers of source APIs (the ERP, Tempo)."),
    "reconcile": LazyCommand(
        "saleshub.commands.reconcile",
        "reconcile_app",
        "Reconciliation: what a sales system says it sold against what the hub holds.",
    ),
    "keys": LazyCommand(
        "saleshub.commands.keys",
        "keys_app",
        "The master key that wraps the data keys of personal data: init, status, rotate, rewrap.",
    ),
    "report": LazyCommand("saleshub.commands.report", "report_app", "Reports on the hub's operation."),
    "audit": LazyCommand(
        "saleshub.commands.audit",
        "audit_app",
        "Operator actions, newest first, and the audit trail's seals: list, seal, verify.",
    ),
    "privacy": LazyCommand(
        "saleshub.commands.privacy",
        "privacy_app",
        "Personal data: erase or export a data subject's, seal rows written in clear.",
    ),
    "api": LazyCommand("saleshub.commands.mappings", "api_app", "The HTTP interface's contract."),
}


def load_command(name: str) -> click.Command:
    """The click command of ``COMMANDS[name]``, importing its module."""
    entry = COMMANDS[name]
    found = getattr(importlib.import_module(entry.module), entry.attribute)
    if isinstance(found, typer.Typer):
        return typer.main.get_group(found)
    single = typer.Typer()
    single.command(name)(found)
    return typer.main.get_command(single)


class _LazyGroup(TyperGroup):
    """A group whose commands are imported when one is run; ``--help`` shows their help lines only."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in COMMANDS if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        loaded = super().get_command(ctx, cmd_name)
        if loaded is not None or cmd_name not in COMMANDS:
            return loaded
        # Listed in a help page: a stand-in with the help line (running one goes through resolve_command).
        return TyperCommand(cmd_name, help=COMMANDS[cmd_name].help)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] in COMMANDS and args[0] not in self.commands:
            self.add_command(load_command(args[0]), args[0])
        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:  # Typer suggests among the loaded commands only
            close = difflib.get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if close and "Did you mean" not in exc.message:
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {', '.join(map(repr, close))}?"
            raise


app = typer.Typer(
    name="saleshub",
    help="Sales integration hub: canonical service orders from Pyxis, Tempo and the ERP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_LazyGroup,
)


@app.callback()
def _entry() -> None:
    """Sales integration hub: canonical service orders from Pyxis, Tempo and the ERP."""
    from saleshub.commands.common import install_stop_handlers

    install_stop_handlers()


def _one_line(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, SalesHubError):
        return " ".join(str(exc).split()) if "\n  " not in str(exc) else str(exc)
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])} "
            f"(SALESHUB_{'__'.join(str(p) for p in e['loc']).upper()}): {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        return f"invalid setting: {problems}"
    from saleshub.store.failures import describe_database_error

    described = describe_database_error(exc)
    if described is not None:
        return described
    return (
        f"internal error ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
        "run again with SALESHUB_LOG_LEVEL=DEBUG to log the trace"
    )


def main() -> None:
    """Run the command line; any error is one clean line and exit status 1, never a traceback.

    Commands turn the errors they expect into messages themselves; this catches the rest (a wrong
    setting found while a command reads its settings, a schema not yet migrated, a bug), and logs
    the trace at DEBUG level.
    """
    try:
        app()
    except Exception as exc:
        log.debug("the command failed", exc_info=exc)
        err.print(f"[red]error:[/red] {_one_line(exc)}", soft_wrap=True, highlight=False)
        sys.exit(1)
