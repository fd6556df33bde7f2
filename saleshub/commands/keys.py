"""``saleshub keys``: the master key that wraps the data keys of personal data.

``init`` creates the master key (the transit key in Vault, or the local key file), ``status`` says
which master key is in use and how many data keys each of its versions wrapped, ``rotate`` makes a
new version and rewraps every data key with it, ``rewrap`` does only the rewrapping (after a
rotation done in Vault), and ``policy`` prints the Vault policy the hub and its administrator need.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from saleshub.commands.common import database, fail
from saleshub.console import err, out
from saleshub.errors import SalesHubError
from saleshub.platform.keys import MasterKey, master_key
from saleshub.platform.secrets import SecretStore, secret_store_from_settings
from saleshub.platform.settings import Settings
from saleshub.store.data_key_versions import count_by_version, count_to_rewrap, rewrap_all

__all__ = ["keys_app", "keys_init", "keys_policy", "keys_rewrap", "keys_rotate", "keys_status"]

keys_app = typer.Typer(
    help="The master key that wraps the data keys of personal data: init, status, rotate, rewrap.",
    no_args_is_help=True,
)

_BatchOption = Annotated[
    int, typer.Option("--batch-size", min=1, max=10_000, help="data keys rewrapped per round trip")
]


@contextmanager
def _master(settings: Settings) -> Iterator[tuple[MasterKey, SecretStore]]:
    try:
        secrets = secret_store_from_settings(settings)
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    try:
        try:
            key = master_key(settings, secrets)
        except SalesHubError as exc:
            raise fail(str(exc)) from None
        try:
            yield key, secrets
        finally:
            key.close()
    finally:
        secrets.close()


@keys_app.command("init")
def keys_init() -> None:
    """Create the master key unless it exists: the transit key in Vault (an administrator's
    capability), or the local key file (mode 600)."""
    settings = Settings()
    with _master(settings) as (key, _):
        try:
            created = key.create()
            version = key.newest_version()
        except SalesHubError as exc:
            raise fail(str(exc)) from None
    out.print(f"{key.name}: {'created' if created else 'exists'}, newest version {version}")


@keys_app.command("status")
def keys_status() -> None:
    """Which master key wraps the data keys, its newest version, and the data keys per version."""
    settings = Settings()
    with _master(settings) as (key, secrets):
        try:
            newest = key.newest_version()
        except SalesHubError as exc:
            raise fail(str(exc)) from None
        with database(settings, secrets) as db, db.engine.connect() as connection:
            versions = count_by_version(connection)
    out.print(f"master key {key.name}, newest version {newest}")
    table = Table("wrapped by", "version", "data keys")
    for item in versions:
        mine = item.scheme == key.scheme
        table.add_row(
            item.scheme if mine else f"{item.scheme} (not this master key)",
            "?" if item.version is None else str(item.version),
            f"{item.keys:,}",
        )
    out.print(table)
    older = sum(i.keys for i in versions if i.scheme == key.scheme and i.version != newest)
    foreign = sum(i.keys for i in versions if i.scheme != key.scheme)
    if older:
        out.print(f"{older:,} data keys are wrapped by an older version: `saleshub keys rewrap` rewraps them")
    if foreign:
        out.print(
            f"{foreign:,} data keys are wrapped by another master key than {key.name}: they cannot be "
            "read with the current SALESHUB_PRIVACY__KEYS"
        )


def _rewrap(settings: Settings, key: MasterKey, secrets: SecretStore, batch_size: int) -> None:
    with database(settings, secrets) as db:
        version = key.newest_version()
        with db.engine.connect() as connection:
            total = count_to_rewrap(connection, key.scheme, key.prefix(version))
        columns = (
            TextColumn("rewrapping data keys"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("rewrap", total=total)
            result = rewrap_all(
                db.engine, key, batch_size=batch_size, on_batch=lambda n: progress.advance(task, n)
            )
    out.print(
        f"{key.name} version {result.version}: {result.rewrapped:,} data keys rewrapped, "
        f"{result.already_newest:,} already wrapped by it, {result.changed_meanwhile:,} changed "
        "meanwhile (erased or rewrapped by another run) left alone"
    )


@keys_app.command("rotate")
def keys_rotate(batch_size: _BatchOption = 1_000) -> None:
    """Make a new master key version the one that wraps, then rewrap every data key with it.

    Interrupted, the rotation stands: `saleshub keys rewrap` finishes the rewrapping.
    """
    settings = Settings()
    with _master(settings) as (key, secrets):
        try:
            version = key.rotate()
            out.print(f"{key.name}: rotated, newest version {version}")
            _rewrap(settings, key, secrets, batch_size)
        except SalesHubError as exc:
            raise fail(str(exc)) from None


@keys_app.command("rewrap")
def keys_rewrap(batch_size: _BatchOption = 1_000) -> None:
    """Rewrap every data key not yet wrapped by the newest master key version (after a rotation
    done in Vault, or to finish an interrupted `keys rotate`); resumable."""
    settings = Settings()
    with _master(settings) as (key, secrets):
        try:
            _rewrap(settings, key, secrets, batch_size)
        except SalesHubError as exc:
            raise fail(str(exc)) from None


@keys_app.command("policy")
def keys_policy(
    admin: Annotated[
        bool, typer.Option("--admin", help="add what `keys init` and `keys rotate` need")
    ] = False,
) -> None:
    """Print the Vault policy (HCL) the hub needs on its transit key (--admin: an administrator's)."""
    from saleshub.platform.keys_vault import transit_policy

    privacy = Settings().privacy
    out.print(
        transit_policy(privacy.vault_transit_mount, privacy.vault_transit_key, admin=admin), markup=False
    )
