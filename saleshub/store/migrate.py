"""Schema migrations (Alembic) and monthly event partitions, run by ``saleshub db upgrade``.

Alembic's configuration is built here rather than in an ``alembic.ini``: the scripts ship inside the
package and the connection comes from ``open_database``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, ForeignKeyConstraint, text

from saleshub.store.partitions import PARENT

__all__ = [
    "current_revision",
    "head_revision",
    "include_name",
    "include_object",
    "is_newer_than_head",
    "login_user",
    "upgrade",
]

_SCRIPTS = Path(__file__).with_name("migrations")


def include_name(name: str | None, type_: str, _parents: Mapping[Any, str | None]) -> bool:
    """For autogenerate: leave out the monthly event partitions (made by ``ensure_partitions``)."""
    return not (type_ == "table" and name is not None and name.startswith(f"{PARENT}_"))


def include_object(
    item: object, _name: str | None, type_: str, _reflected: bool, _compare_to: object | None
) -> bool:
    """For autogenerate: leave out the per-partition copies PostgreSQL makes of foreign keys."""
    if type_ == "foreign_key_constraint" and isinstance(item, ForeignKeyConstraint):
        return not item.referred_table.name.startswith(f"{PARENT}_")
    return True


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: the newest)."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def head_revision() -> str | None:
    """The newest migration shipped with this version of the hub."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (``None`` for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def login_user(engine: Engine) -> str:
    """The database user the engine logs in as (who a migration runs as)."""
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT current_user")).scalar_one())


def is_newer_than_head(revision: str | None) -> bool:
    """Whether ``revision`` comes from a newer hub: set, and none of this hub's migrations.

    A release's migrations keep the previous release working on the new schema (added columns and
    tables, nothing dropped or renamed that it uses), so during a rollout, and after a rollback of
    the code, this hub runs on a schema one release ahead of its own migrations.
    """
    if revision is None:
        return False
    known = {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}
    return revision not in known
