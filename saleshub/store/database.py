"""Connections: one SQLAlchemy engine per process on psycopg 3, embedded or configured.

``open_database(settings, secrets)`` is the one way the runtime gets a database: it starts the
embedded server when no URL is configured, sets the user and password of the secret
``database/credentials`` on a configured URL (so the URL in the settings carries no password),
builds the engine with a bounded pool, and says which it is. ``Database.url`` is the resolved URL,
which ``serve`` hands to its worker processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic import SecretStr
from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from saleshub.errors import ConfigurationError
from saleshub.platform.secrets import SecretStore, secret_store_from_settings
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

    @property
    def url(self) -> SecretStr:
        """The resolved URL, credentials included (masked in any ``repr``)."""
        return SecretStr(self.engine.url.render_as_string(hide_password=False))

    def close(self) -> None:
        """Dispose of the pool and release the embedded server."""
        self.engine.dispose()
        if self.embedded is not None:
            self.embedded.stop()


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        # SQLAlchemy's message quotes the URL, password included.
        raise ConfigurationError(
            "SALESHUB_DATABASE__URL is not a database URL like postgresql+psycopg://user@host/db"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "postgresql+psycopg":
        raise ConfigurationError(
            f"SALESHUB_DATABASE__URL uses driver {parsed.drivername!r}; the hub needs postgresql+psycopg"
        )
    return parsed


def _engine(parsed: URL, pool_size: int) -> Engine:
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


def open_database(settings: Settings, secrets: SecretStore | None = None) -> Database:
    """The configured database, or a started embedded one when no URL is set.

    ``secrets`` gives ``database/credentials`` (default: the store the settings choose); when set,
    its user and password replace those of the URL.
    """
    config = settings.database
    if config.url is not None:
        parsed = _parse(config.url.get_secret_value())
        store = secrets if secrets is not None else secret_store_from_settings(settings)
        credentials = store.credentials("database/credentials")
        if credentials is not None:
            parsed = parsed.set(
                username=credentials.username, password=credentials.password.get_secret_value()
            )
        engine = _engine(parsed, config.pool_size)
        return Database(engine, None, f"PostgreSQL at {engine.url.render_as_string(hide_password=True)}")
    embedded = EmbeddedPostgres(config.data_dir)
    url = embedded.start()
    try:
        engine = _engine(_parse(url), config.pool_size)
    except Exception:
        embedded.stop()
        raise
    return Database(engine, embedded, f"embedded PostgreSQL in {embedded.pgdata}")
