"""``saleshub db``: migrate the schema, list event partitions, apply retention, back up and restore."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from adapters.registry import AdapterRegistry
from saleshub.commands.common import database, fail
from saleshub.console import out
from saleshub.errors import SalesHubError
from saleshub.platform.secrets import secret_store_from_settings
from saleshub.platform.settings import Settings
from saleshub.runtime import register_systems
from saleshub.store.backup import backup, restore
from saleshub.store.database import OWNER_SECRET
from saleshub.store.migrate import current_revision, head_revision, login_user, upgrade
from saleshub.store.outbox import purge_published
from saleshub.store.partitions import ensure_partitions, list_partitions, purge_raw_bodies

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


@db_app.command("retention")
def db_retention(
    keep_months: Annotated[int, typer.Option(help="keep raw bodies of this many past months", min=1)] = 6,
    outbox_days: Annotated[
        int, typer.Option(help="keep published outbox rows for this many days", min=1)
    ] = 7,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only list what would be purged")] = False,
) -> None:
    """Drop the raw bodies of partitions older than --keep-months, and published outbox rows older
    than --outbox-days; every audit row stays, and an unpublished outbox row is never removed."""
    with database() as db:
        if current_revision(db.engine) != head_revision():
            raise fail("the database is not migrated; run `saleshub db upgrade` first")
        with db.engine.begin() as connection:
            affected = purge_raw_bodies(connection, keep_months=keep_months, dry_run=dry_run)
        verb = "would purge" if dry_run else "purged"
        for info in affected:
            out.print(f"{verb} {info.rows_with_body} raw bodies in {info.name}")
        if not affected:
            out.print(f"nothing to purge: no raw bodies older than {keep_months} months")
        with db.engine.begin() as connection:
            published = purge_published(connection, keep_days=outbox_days, dry_run=dry_run)
        out.print(f"{verb} {published} published outbox rows older than {outbox_days} days")


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
