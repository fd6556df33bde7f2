"""A connection of its own that ``LISTEN``s on one PostgreSQL channel.

The processors sleep on the recording channel (``saleshub.store.events.CHANNEL``); every hub
process follows mapping deployments on ``saleshub.store.mapping_revisions.MAPPINGS_CHANNEL``.
A notification is a hint to look now: the listener's owner always also looks after a timeout, so a
notification missed while reconnecting only delays the work.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from sqlalchemy import Engine

from saleshub.errors import RetriableError
from saleshub.store.database import dedicated_connection
from saleshub.store.failures import database_errors

__all__ = ["Listener"]

log = logging.getLogger(__name__)


class Listener:
    """``LISTEN channel`` on a dedicated autocommit connection, reconnecting when it is lost."""

    def __init__(self, engine: Engine, channel: str) -> None:
        self._engine = engine
        self._channel = channel
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._renew_at: float | None = None

    def listen(self) -> None:
        """Connect and listen, if not already; raises ``RetriableError`` if the database is down.

        The connection is opened through the engine (its connect events, so leased credentials
        apply) and replaced once it reaches the pool's recycle age, like a pooled one.
        """
        if self._renew_at is not None and time.monotonic() > self._renew_at:
            self.close()
        if self._conn is not None and not self._conn.closed:
            return
        try:
            with database_errors():
                self._conn, max_age = dedicated_connection(self._engine)
            self._renew_at = None if max_age is None else time.monotonic() + max_age
            self._conn.execute(f"LISTEN {self._channel}")
        except psycopg.OperationalError as exc:
            self.close()
            raise RetriableError(f"the database is unavailable: {exc}") from exc
        except RetriableError:
            self.close()
            raise

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Wait for a notification (True), ``timeout`` seconds, or ``stop`` (False)."""
        if self._conn is None:
            stop.wait(timeout)
            return False
        try:
            # Short slices, so a stop request is noticed within a fraction of a second.
            deadline = time.monotonic() + timeout
            while not stop.is_set() and time.monotonic() < deadline:
                for _ in self._conn.notifies(timeout=min(0.25, timeout), stop_after=1):
                    return True
        except psycopg.Error as exc:
            log.warning("lost the connection listening on %s (%s); reconnecting", self._channel, exc)
            self.close()
        return False

    def close(self) -> None:
        """Close the connection (a later ``listen`` reconnects)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
