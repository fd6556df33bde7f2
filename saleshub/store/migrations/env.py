"""Alembic environment: runs migrations on the connection ``saleshub.store.migrate`` hands over.

Migrations always run under a transaction-level advisory lock, so two hub processes starting at the
same time do not race each other through the same migration.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from saleshub.store.migrate import include_name, include_object
from saleshub.store.tables import metadata

MIGRATION_LOCK_ID = 0x5A1E5_4B


def run_migrations(connection: Connection) -> None:
    """Apply pending migrations on ``connection`` under the migration lock."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        transaction_per_migration=False,
        include_name=include_name,
        include_object=include_object,
    )
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; run `saleshub db upgrade`")
connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through `saleshub db upgrade`, which provides the connection")
run_migrations(connection)
