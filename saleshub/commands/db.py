"""``saleshub db``: migrate the schema, list event partitions, apply retention, back up and restore."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from adapters.registry import AdapterRegistry
from saleshub.actions.events import cli_actor
from saleshub.actions.retention import POLICIES, RETENTION, RetentionReport, apply_retention, plan_from
from saleshub.commands.common import USAGE_ERROR, database, fail
from saleshub.console import out
from saleshub.errors import InvalidRequestError, SalesHubError
from saleshub.platform.secrets import secret_store_from_settings
from saleshub.platform.settings import Settings
from saleshub.publish.outbox import Outbox
from saleshub.publish.schemas import EventSchemas
from saleshub.runtime import register_systems
from saleshub.store.backup import backup, restore
from saleshub.store.database import OWNER_SECRET
from saleshub.store.migrate import current_revision, head_revision, login_user, upgrade
from saleshub.store.partitions import ensure_partitions, list_partitions

__all__ = ["db_app", "db_backup", "db_partitions", "db_restore", "db_retention", "db_upgrade"]

db_app = typer.Typer(help="Database schema, partitions and retention.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations and create the event partitions months ahead, as the owner role.

    With a database URL, the owner logs in with the secret ``database/owner`` when it is set; else
    with ``database/credentials``, unless those are leased from Vault (a leased user owns nothing
    and makes no schema change).
    """
    settings = Settings()
    try:
        secrets = secret_store_from_settings(settings)
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    try:
        owner = settings.database.url is not None and secrets.credentials(OWNER_SECRET) is not None
    except SalesHubError as exc:
        secrets.close()
        raise fail(str(exc)) from None
    try:
        if not owner and settings.secrets.leases_database:
            raise fail(
                "schema changes and partitions run as the database's owner role, never as the leased "
                f"runtime user: set the secret {OWNER_SECRET} (username, password) of the owner, in "
                f"{secrets.where(OWNER_SECRET)}"
            )
        with database(settings, secrets, owner=owner) as db:
            before = current_revision(db.engine)
            upgrade(db.engine)
            with db.engine.begin() as connection:
                created = ensure_partitions(connection)
                registered = register_systems(connection, AdapterRegistry.default().classes())
            out.print(
                f"{db.description} as {login_user(db.engine)}: schema {before or '(empty)'} → "
                f"{current_revision(db.engine)}"
            )
            for name in created:
                out.print(f"created partition {name}")
            for code in registered:
                out.print(f"registered sales system {code}")
    finally:
        secrets.close()


@db_app.command("partitions")
def db_partitions() -> None:
    """List the monthly event partitions with their row counts."""
    with database() as db, db.engine.connect() as connection:
        table = Table("partition", "month", "events", "with raw body")
        for info in list_partitions(connection):
            table.add_row(info.name, f"{info.month:%Y-%m}", str(info.rows), str(info.rows_with_body))
        out.print(table)


def _raw_body_days(values: list[str]) -> tuple[int | None, dict[str, int]]:
    """``--raw-body-days`` values: ``DAYS`` for every system, ``SYSTEM=DAYS`` for one."""
    every: int | None = None
    per_system: dict[str, int] = {}
    for value in values:
        system, _, days = value.rpartition("=")
        if not days.strip().isdigit():
            raise fail(
                f"--raw-body-days takes DAYS or SYSTEM=DAYS (e.g. pyxis=30); got {value!r}", USAGE_ERROR
            )
        if system:
            per_system[system.strip()] = int(days)
        else:
            every = int(days)
    return every, per_system


@db_app.command("retention")
def db_retention(
    raw_body_days: Annotated[
        list[str],
        typer.Option(
            help="empty raw bodies this many days after receipt: DAYS for every system, SYSTEM=DAYS for "
            "one (repeatable; default: the settings retention.raw_body_days and raw_body_days_by_system)",
            metavar="DAYS|SYSTEM=DAYS",
            show_default=False,
        ),
    ] = [],  # noqa: B006  (Typer reads the default; it is never mutated)
    personal_years: Annotated[
        int | None,
        typer.Option(
            help="destroy the personal data of orders closed and unchanged this many years "
            "(default: the setting retention.personal_years)",
            min=1,
            show_default=False,
        ),
    ] = None,
    facts_years: Annotated[
        int | None,
        typer.Option(
            help="delete orders closed and unchanged this many years, keeping their events "
            "(default: the setting retention.facts_years)",
            min=1,
            show_default=False,
        ),
    ] = None,
    outbox_days: Annotated[
        int | None,
        typer.Option(
            help="delete outbox rows published this many days ago "
            "(default: the setting retention.outbox_days)",
            min=1,
            show_default=False,
        ),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(
            help="rows or orders per transaction (default: the setting retention.batch_size)",
            min=1,
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count per policy and system what would go; change nothing")
    ] = False,
) -> None:
    """Apply retention: empty old raw bodies, destroy the personal data of long-closed orders, delete
    orders past the legal period (their events stay), and delete old published outbox rows.

    The periods are the settings of the group retention; the options override them for this run.
    Resumable: batches commit one by one, and running again goes on where a stopped run ended.
    """
    settings = Settings()
    every, per_system = _raw_body_days(raw_body_days)
    try:
        plan = plan_from(
            settings.retention,
            raw_body_days=every,
            raw_body_days_by_system=per_system,
            personal_years=personal_years,
            facts_years=facts_years,
            outbox_days=outbox_days,
            batch_size=batch,
        )
    except InvalidRequestError as exc:
        raise fail(str(exc), USAGE_ERROR) from None
    outbox = Outbox(EventSchemas.load(settings.contracts_dir))
    with database(settings) as db:
        if current_revision(db.engine) != head_revision():
            raise fail("the database is not migrated; run `saleshub db upgrade` first")
        try:
            report = apply_retention(db.engine, plan, actor=cli_actor(), outbox=outbox, dry_run=dry_run)
        except InvalidRequestError as exc:
            raise fail(str(exc), USAGE_ERROR) from None
        except SalesHubError as exc:
            raise fail(str(exc)) from None
    _print_report(report)


_POLICY_LINES = {
    "raw_bodies": "raw bodies (events stay)",
    "personal_data": "personal data of closed orders",
    "facts": "closed orders deleted (events stay)",
}


def _print_report(report: RetentionReport) -> None:
    plan = report.plan
    by_system = ", ".join(f"{s} {d}" for s, d in sorted(plan.raw_body_days_by_system.items()))
    out.print(
        f"raw bodies after {plan.raw_body_days} days{f' ({by_system})' if by_system else ''}; personal "
        f"data of closed orders after {plan.personal_years} years (unchanged since "
        f"{report.personal_cutoff():%Y-%m-%d}); closed orders after {plan.facts_years} years (since "
        f"{report.facts_cutoff():%Y-%m-%d}); published outbox rows after {plan.outbox_days} days"
    )
    verb = "would delete" if report.dry_run else "deleted"
    if any(report.counts[policy] for policy in POLICIES):
        table = Table("policy", "system", "would go" if report.dry_run else "done")
        for policy in POLICIES:
            for system, count in sorted(report.counts[policy].items()):
                table.add_row(_POLICY_LINES[policy], system, f"{count:,}")
        out.print(table)
    else:
        out.print("no raw body, personal data or order is past its period")
    out.print(f"{verb} {report.outbox_rows:,} published outbox rows older than {plan.outbox_days} days")
    if report.dry_run:
        out.print("dry run: nothing changed (an order past both periods counts in both)")
    elif report.erasure_ids:
        out.print(
            f"erasures {report.erasure_ids[0]}–{report.erasure_ids[-1]} in the register (reason "
            f"{RETENTION}), each announced by a customer_erased event"
        )


@db_app.command("backup")
def db_backup(file: Annotated[Path, typer.Argument(help="the backup file to write")]) -> None:
    """Back up the embedded PostgreSQL's hub database to FILE (pg_dump, custom format; the hub may run)."""
    with database() as db:
        try:
            backup(db, file)
        except SalesHubError as exc:
            raise fail(str(exc)) from None
        out.print(f"{db.description}: backed up to {file} ({file.stat().st_size:,} bytes)")


@db_app.command("restore")
def db_restore(file: Annotated[Path, typer.Argument(help="a file written by `saleshub db backup`")]) -> None:
    """Restore the embedded PostgreSQL's hub database from FILE (stop every hub process first)."""
    with database() as db:
        try:
            restore(db, file)
        except SalesHubError as exc:
            raise fail(str(exc)) from None
        out.print(f"{db.description}: restored from {file}; run `saleshub db upgrade` if the hub is newer")
        out.print(
            "[yellow]erasures made after this backup was taken are not in it: apply them again with "
            "`saleshub privacy erase --from-register FILE --reason …` (FILE: `saleshub privacy erasures "
            "--json` of the database you replaced), or by the `customer_erased` events on Kafka[/yellow]"
        )
