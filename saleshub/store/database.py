"""Connections: one SQLAlchemy engine per process on psycopg 3, embedded or configured.

``open_database(settings, secrets)`` is the one way the runtime gets a database: it starts the
embedded server when no URL is configured, sets the user and password of the secret
``database/credentials`` on a configured URL (so the URL in the settings carries no password),
builds the engine with a bounded pool, and says which it is. ``Database.url`` is the resolved URL,
which ``serve`` hands to its worker processes.

When the secret store leases the credentials (Vault's database secrets engine), the URL carries no
password at all: every new connection logs in with the lease's current user and password (the
``do_connect`` event), and the pool recycles connections well inside a lease's lifetime, so the pool
moves to fresh credentials before the old ones are revoked without failing a request. A worker
process given that URL leases its own credentials.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import psycopg
from psycopg.types.array import ListBinaryDumper
from pydantic import SecretStr
from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from saleshub.errors import ConfigurationError, MissingSecretError
from saleshub.platform.secrets import LeasedCredentials, SecretStore, secret_store_from_settings
from saleshub.platform.settings import Settings
from saleshub.store.embedded import EmbeddedPostgres
from saleshub.store.failures import first_line
from saleshub.store.personal import attach_personal_data, personal_data_from_settings

__all__ = ["OWNER_SECRET", "Database", "EncodedJSON", "dedicated_connection", "open_database"]


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
    #: The secret store ``open_database`` made for itself (none was given): closed with the database.
    owned_secrets: SecretStore | None = None

    @property
    def url(self) -> SecretStr:
        """The resolved URL, credentials included (masked in any ``repr``)."""
        return SecretStr(self.engine.url.render_as_string(hide_password=False))

    def close(self) -> None:
        """Dispose of the pool and release the embedded server."""
        self.engine.dispose()
        if self.owned_secrets is not None:
            self.owned_secrets.close()
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


def _engine(parsed: URL, pool_size: int, recycle: float = -1) -> Engine:
    engine = create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        pool_timeout=10,
        pool_recycle=int(recycle) if recycle > 0 else -1,
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
        # The store writes batches as arrays unnested in one statement. psycopg's default sends a
        # list as an array literal in text, quoting and escaping every element in Python (a tenth
        # of the processor's time); in binary each element is packed as it is. Measured on the
        # processor over a backlog: +15-20 % events/s, and +45 % for the recorder.
        dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)  # type: ignore[attr-defined]

    return engine


#: The secret with the owner role's user and password, for schema changes (``saleshub db upgrade``).
OWNER_SECRET = "database/owner"
_LEASED_USER = "saleshub_leased_user"  # key in a pooled connection's info: the user it logged in as
_INSUFFICIENT_PRIVILEGE = "42501"


def _leased_engine(parsed: URL, pool_size: int, leased: LeasedCredentials) -> Engine:
    engine = _engine(parsed.set(username=None, password=None), pool_size, leased.recycle_seconds)

    @event.listens_for(engine, "do_connect")
    def _current_credentials(
        _dialect: object, record: ConnectionPoolEntry, _args: object, params: dict[str, object]
    ) -> None:
        credentials = leased.current()
        params["user"] = credentials.username
        params["password"] = credentials.password.get_secret_value()
        record.info[_LEASED_USER] = credentials.username

    @event.listens_for(engine, "handle_error")
    def _credentials_refused(context: ExceptionContext) -> None:
        # A revoked lease shows here first: its user can no longer log in, and the connections it
        # already has lose their privileges mid-transaction. The lease is told (it is checked and
        # replaced at once), and the error counts as a lost connection: the pool drops every
        # connection opened before now, so none of the revoked user's is used again.
        original = context.original_exception
        sqlstate = getattr(original, "sqlstate", None) or ""
        # A refused login carries no SQLSTATE in psycopg (libpq reports it as text while connecting).
        login_refused = context.connection is None and "authentication failed" in str(original)
        if sqlstate[:2] != "28" and sqlstate != _INSUFFICIENT_PRIVILEGE and not login_refused:
            return
        connection = context.connection
        user = (
            connection.info.get(_LEASED_USER)
            if connection is not None and not connection.invalidated
            else None
        )
        if login_refused or sqlstate[:2] == "28":
            reason = "its login was refused"
        else:
            reason = f"refused mid-transaction: {first_line(original)}"
        leased.refused(str(user or leased.current().username), reason)
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = True

    return engine


def _owner(parsed: URL, store: SecretStore, owned: SecretStore | None) -> Database:
    credentials = store.credentials(OWNER_SECRET)
    if credentials is None:
        raise MissingSecretError(OWNER_SECRET, store.where(OWNER_SECRET))
    parsed = parsed.set(username=credentials.username, password=credentials.password.get_secret_value())
    engine = _engine(parsed, 1)
    where = engine.url.render_as_string(hide_password=True)
    return Database(engine, None, f"PostgreSQL at {where} (the owner role)", owned)


def _configured(parsed: URL, pool_size: int, store: SecretStore, owned: SecretStore | None) -> Database:
    leased = store.leased_credentials("database/credentials")
    if leased is not None:
        engine = _leased_engine(parsed, pool_size, leased)
        where = engine.url.render_as_string(hide_password=True)
        return Database(
            engine, None, f"PostgreSQL at {where} (credentials leased from the secret store)", owned
        )
    credentials = store.credentials("database/credentials")
    if credentials is not None:
        parsed = parsed.set(username=credentials.username, password=credentials.password.get_secret_value())
    engine = _engine(parsed, pool_size)
    where = engine.url.render_as_string(hide_password=True)
    return Database(engine, None, f"PostgreSQL at {where}", owned)


def dedicated_connection(engine: Engine) -> tuple[psycopg.Connection[tuple[object, ...]], float | None]:
    """A psycopg connection of the engine's own, outside its pool (for ``LISTEN``), in autocommit.

    It is opened like a pooled one (the engine's connect events, so leased credentials apply) and
    then detached. Also returns how long it may be kept: the pool's recycle age, or ``None``.
    """
    proxied = engine.raw_connection()
    connection = proxied.driver_connection
    if not isinstance(connection, psycopg.Connection):
        proxied.close()
        raise TypeError(f"the engine's driver gave {type(connection).__name__}, not a psycopg connection")
    proxied.detach()
    connection.autocommit = True
    recycle: int = getattr(engine.pool, "_recycle", -1)
    return connection, (float(recycle) if recycle > 0 else None)


def open_database(settings: Settings, secrets: SecretStore | None = None, *, owner: bool = False) -> Database:
    """The configured database, or a started embedded one, with its personal-data port attached."""
    database = _open_database(settings, secrets, owner=owner)
    attach_personal_data(database.engine, lambda: personal_data_from_settings(settings, secrets))
    return database


def _open_database(
    settings: Settings, secrets: SecretStore | None = None, *, owner: bool = False
) -> Database:
    """The configured database, or a started embedded one when no URL is set.

    ``secrets`` gives ``database/credentials`` (default: the store the settings choose); when set,
    its user and password replace those of the URL. ``owner``: log in with ``database/owner``
    instead, the role that owns the schema (schema changes and partitions; a missing secret is an
    error), never a leased user.
    """
    config = settings.database
    if config.url is not None:
        parsed = _parse(config.url.get_secret_value())
        owned: SecretStore | None = None
        if secrets is None:
            secrets = owned = secret_store_from_settings(settings)
        try:
            if owner:
                return _owner(parsed, secrets, owned)
            return _configured(parsed, config.pool_size, secrets, owned)
        except Exception:
            if owned is not None:
                owned.close()
            raise
    embedded = EmbeddedPostgres(config.data_dir)
    url = embedded.start()
    try:
        engine = _engine(_parse(url), config.pool_size)
    except Exception:
        embedded.stop()
        raise
    return Database(engine, embedded, f"embedded PostgreSQL in {embedded.pgdata}")
