"""What the runtime commands share: stop signals, opening the database, parsing ids and times."""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

import typer

from saleshub.console import err
from saleshub.errors import SalesHubError

if TYPE_CHECKING:  # imported when a command opens the database, so `saleshub --help` stays light
    from saleshub.platform.secrets import SecretStore
    from saleshub.platform.settings import Settings
    from saleshub.store.database import Database

__all__ = [
    "USAGE_ERROR",
    "StopSignal",
    "database",
    "fail",
    "install_stop_handlers",
    "parse_time",
    "parse_uuid",
    "wait_for_signal",
]


class StopSignal(SystemExit):
    """SIGTERM or SIGINT arrived: unwind (``finally`` blocks, ``atexit``) and exit 128 + signal."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(128 + signum)


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise StopSignal(signum)


def install_stop_handlers() -> None:
    """Make SIGTERM and SIGINT unwind the command like an exception instead of killing it.

    Python's default for SIGTERM ends the process at once: no ``finally``, no ``atexit``, so the
    embedded PostgreSQL is never released. Commands that serve until stopped catch ``StopSignal``
    and exit 0; a one-shot command exits 128 + the signal number after its cleanup.
    """
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _raise_stop)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as an error and return the exit to raise."""
    err.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def database(
    settings: Settings | None = None, secrets: SecretStore | None = None, *, owner: bool = False
) -> Iterator[Database]:
    """The configured (or embedded) database for the length of one command (``owner``: as its owner)."""
    from saleshub.platform.settings import Settings
    from saleshub.store.database import open_database

    try:
        db = open_database(settings or Settings(), secrets, owner=owner)
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    try:
        yield db
    finally:
        db.close()


#: The exit status of a command line the command cannot use (a bad option value), as click's own.
USAGE_ERROR = 2


def parse_uuid(value: str, what: str) -> uuid.UUID:
    """``value`` as a UUID, or a usage error (exit 2) naming ``what`` it should be."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise fail(
            f"{what} must be a UUID like 1fba2e71-9b1c-4f59-a5f0-849f1f2cc6ea; got {value!r}", USAGE_ERROR
        ) from None


def parse_time(value: str | None, what: str) -> datetime | None:
    """An ISO 8601 date or time (UTC when no offset is given), or a usage error (exit 2)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"{what} must be an ISO 8601 date or time like 2026-11-01T08:00; got {value!r}", USAGE_ERROR
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):  # a timed wait, so the main thread keeps receiving signals
        pass
