"""Database failures translated into the hub's error tree, in one place for every caller.

SQLAlchemy and psycopg raise their own exceptions; above the store nothing should need to know them
(as httpx maps httpcore's errors in its transport). ``as_retriable`` says whether an exception means
"the database is unavailable" (a refused, dropped or shut-down connection, an exhausted pool), and
``database_errors`` re-raises such an exception as ``RetriableError`` for the ``with`` block it
guards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from saleshub.errors import RetriableError

__all__ = ["as_retriable", "database_errors", "describe_database_error", "first_line", "lacks_privilege"]


def as_retriable(exc: BaseException) -> RetriableError | None:
    """``exc`` as a ``RetriableError`` if it means the database is unavailable, else ``None``."""
    if isinstance(exc, RetriableError):
        return exc
    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or _is_unavailable(exc)):
        return RetriableError(f"the database is unavailable: {exc.orig or exc}")
    if isinstance(exc, PoolTimeoutError):
        return RetriableError(f"no database connection free within the pool timeout: {exc}")
    return None


@contextmanager
def database_errors() -> Iterator[None]:
    """Re-raise an unavailable-database error of the block as ``RetriableError``; others unchanged."""
    try:
        yield
    except Exception as exc:
        retriable = as_retriable(exc)
        if retriable is not None and retriable is not exc:
            raise retriable from exc
        raise


def _is_unavailable(exc: DBAPIError) -> bool:
    # OperationalError covers a refused, dropped or shut-down connection; SQLSTATE class 57
    # (operator intervention, e.g. admin shutdown) and 08 (connection exception) say the same, and
    # so do class 28 (the login refused) and 42501 (a privilege revoked, e.g. with a revoked
    # database lease): the hub's own statements are granted, so their refusal is the database's
    # state, not the request's fault, and passes once the credentials are fixed or replaced.
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    return isinstance(exc, OperationalError) or sqlstate[:2] in ("08", "28", "57") or sqlstate == "42501"


def lacks_privilege(exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL refusing a statement to the user for want of a privilege."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) == "42501"


def describe_database_error(exc: BaseException) -> str | None:
    """One line an operator can act on for a database error, or ``None`` if ``exc`` is not one."""
    retriable = as_retriable(exc)
    if retriable is not None:
        return " ".join(str(retriable).split())
    if isinstance(exc, ProgrammingError) and getattr(exc.orig, "sqlstate", None) in ("42P01", "42703"):
        first = str(exc.orig).splitlines()[0] if exc.orig else "a table or column is missing"
        return f"the database schema is not up to date ({first}); run `saleshub db upgrade`"
    if isinstance(exc, DBAPIError):
        first = str(exc.orig or exc).splitlines()[0]
        return f"the database refused the request: {first}"
    return None


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, as a text column can hold it (no NUL, at most 500 chars).

    A database error's text goes on with the statement and its parameters (order content, perhaps
    personal data): only its first line is kept.
    """
    try:
        text = str(exc)
    except Exception:  # a message that cannot even be formatted still names its type
        text = f"{type(exc).__name__} (its message could not be formatted)"
    first = text.splitlines()[0] if text else ""
    return first.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")[:500]
