"""Connections: one SQLAlchemy engine per process on psycopg 3, embedded or configured.

``open_database(settings)`` is the one way the runtime gets a database: it starts the embedded
server when no URL is configured, builds the engine with a bounded pool, and says which it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from saleshub.errors import ConfigurationError
from saleshub.platform.settings import Settings
from saleshub.store.embedded import EmbeddedPostgres

__all__ = ["Database", "EncodedJSON", "open_database"]


class EncodedJSON(str):
    """A JSON document already encoded as text: written to a JSON/JSONB column as it is.

    The canonical order is serialised once (pydantic's Rust serialiser) and the same text is written
    to the order and its version row, instead of being dumped to Python objects and re-encoded by
    ``json.dumps`` for each column.
    """

    __slots__ = ()


def _json_serializer(value: object) -> str:
    if isinstance(value, EncodedJSON):
        return str(value)
    return json.dumps(value)


@dataclass
class Database:
    """The engine, and the embedded server behind it if there is one."""

    engine: Engine
    embedded: EmbeddedPostgres | None = None
    description: str = field(default="")

    def close(self) -> None:
        """Dispose of the pool and release the embedded server."""
        self.engine.dispose()
        if self.embedded is not None:
            self.embedded.stop()


def _engine(url: str, pool_size: int) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"SALESHUB_DATABASE_URL is not a database URL: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "postgresql+psycopg":
        raise ConfigurationError(
            f"SALESHUB_DATABASE_URL uses driver {parsed.drivername!r}; the hub needs postgresql+psycopg"
        )
    engine = create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        pool_timeout=10,
        json_serializer=_json_serializer,
        connect_args={"connect_timeout": 5, "application_name": "saleshub"},
    )

    @event.listens_for(engine, "connect")
    def _session_settings(dbapi_connection: object, _record: object) -> None:
        # Durability is not negotiable for the ingestion write: a sender gets 2xx only after a
        # commit that survives a crash, whatever the server's default says.
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("SET synchronous_commit = on")
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.close()
        dbapi_connection.commit()  # type: ignore[attr-defined]

    return engine


def open_database(settings: Settings) -> Database:
    """The configured database, or a started embedded one when no URL is set."""
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
        engine = _engine(url, settings.db_pool_size)
        return Database(engine, None, f"PostgreSQL at {engine.url.render_as_string(hide_password=True)}")
    embedded = EmbeddedPostgres(settings.data_dir)
    url = embedded.start()
    return Database(
        _engine(url, settings.db_pool_size), embedded, f"embedded PostgreSQL in {embedded.pgdata}"
    )
