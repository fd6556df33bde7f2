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

__all__ = ["Listener"]

log = logging.getLogger(__name__)


class Listener:
    """``LISTEN channel`` on a dedicated autocommit connection, reconnecting when it is lost."""

    def __init__(self, engine: Engine, channel: str) -> None:
        url = engine.url.set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._channel = channel
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def listen(self) -> None:
        """Connect and listen, if not already; raises ``RetriableError`` if the database is down."""
        if self._conn is not None and not self._conn.closed:
            return
        try:
            self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            self._conn.execute(f"LISTEN {self._channel}")
        except psycopg.OperationalError as exc:
            self.close()
            raise RetriableError(f"the database is unavailable: {exc}") from exc

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
