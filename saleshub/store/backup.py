"""Back up and restore the embedded PostgreSQL with the ``pg_dump``/``pg_restore`` it ships with.

For the embedded default only (``saleshub db backup|restore``): a configured, managed PostgreSQL is
backed up by its own service, with point-in-time recovery (``docs/operations.md``). A backup is
one file in ``pg_dump``'s custom format of the hub's database, taken in one consistent snapshot
while the hub runs. A restore replaces the ``public`` schema with the dump's in one transaction and refuses
while another process is connected to the database: stop the hub first.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import text

from saleshub.errors import ConfigurationError, SalesHubError
from saleshub.store.database import Database

__all__ = ["BackupError", "backup", "restore"]


class BackupError(SalesHubError):
    """``pg_dump`` or ``pg_restore`` failed, or the database is in use; the message says which."""


def _tool(name: str) -> Path:
    import pgserver  # the embedded server's package ships the client tools of its version

    path = Path(pgserver.__file__).parent / "pginstall" / "bin" / name
    if not path.is_file():
        raise ConfigurationError(f"{name} is not in the pgserver package ({path})")
    return path


def _conninfo(database: Database) -> str:
    if database.embedded is None:
        raise ConfigurationError(
            "saleshub db backup|restore is for the embedded PostgreSQL; SALESHUB_DATABASE__URL names a "
            "server of its own: back it up with that server's backups (docs/operations.md)"
        )
    return database.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = " ".join((done.stderr or done.stdout).split())
        raise BackupError(f"{what} failed (exit {done.returncode}): {reason}")


def backup(database: Database, file: Path) -> None:
    """Write the whole database to ``file`` (custom format; a consistent snapshot, the hub may run).

    The file is readable by its owner only (it holds the wrapped data keys and the audit trail).
    """
    try:
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT, 0o600))
        file.chmod(0o600)
    except OSError as exc:
        raise BackupError(f"cannot write the backup to {file}: {exc.strerror}") from None
    _run(
        [
            str(_tool("pg_dump")),
            "--format=custom",
            "--no-owner",
            f"--file={file}",
            f"--dbname={_conninfo(database)}",
        ],
        f"pg_dump to {file}",
    )


def restore(database: Database, file: Path) -> None:
    """Replace the database's objects with those of the backup ``file``, in one transaction."""
    conninfo = _conninfo(database)
    if not file.is_file():
        raise ConfigurationError(f"{file}: no such backup file")
    with database.engine.connect() as conn:
        others = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
        ).scalar_one()
    database.engine.dispose()
    if others:
        raise BackupError(
            f"{others} other connection(s) use the database: stop `saleshub serve` and every other hub "
            "process on this data directory, then restore"
        )
    # pg_restore --clean cannot drop the indexes of partitions (their parents' indexes need them),
    # so the schema is replaced whole: dropped, created and filled by the dump's script, in one
    # transaction; if any statement fails nothing has changed.
    with tempfile.TemporaryDirectory(prefix="saleshub-restore-") as scratch:
        script = Path(scratch) / "restore.sql"
        _run(
            [str(_tool("pg_restore")), "--no-owner", "--schema=public", f"--file={script}", str(file)],
            f"reading the backup {file}",
        )
        _run(
            [
                str(_tool("psql")),
                "--no-psqlrc",
                "--quiet",
                "--single-transaction",
                "--set=ON_ERROR_STOP=1",
                "--command=DROP SCHEMA public CASCADE",
                "--command=CREATE SCHEMA public",
                f"--file={script}",
                f"--dbname={conninfo}",
            ],
            f"the restore of {file}",
        )
