"""Whether the Kafka broker answers, found out in seconds and recorded for ``saleshub status``.

A relay waiting on delivery reports learns of an outage only when its records time out
(``relay_message_timeout_ms``, 30 s by default). ``BrokerWatch`` asks the broker for one topic's
metadata every ``interval`` seconds instead (while the relay waits for reports, backs off or idles),
with a short timeout: a broker that does not answer within ``probe_timeout`` is unreachable, and the
time of that probe is recorded in the database (``saleshub.store.outbox.record_broker_state``) as the
start of the outage. Only changes are written, plus a heartbeat every ``heartbeat`` seconds so that
``status`` can tell a current verdict from an old one.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from confluent_kafka import KafkaException, Producer
from sqlalchemy import Engine

from canonical.events import EventKind
from saleshub.errors import RetriableError
from saleshub.store.outbox import record_broker_state

__all__ = ["BrokerWatch"]

log = logging.getLogger(__name__)

_PROBE_TOPIC = EventKind.ORDER_RECEIVED.topic


class BrokerWatch:
    """Probes the broker with a metadata request at most every ``interval`` s; records what it finds."""

    def __init__(
        self,
        engine: Engine,
        *,
        interval: float = 1.0,
        probe_timeout: float = 2.0,
        heartbeat: float = 30.0,
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.probe_timeout = probe_timeout
        self.heartbeat = heartbeat
        self.reachable: bool | None = None  # unknown until the first probe
        self.unreachable_since: datetime | None = None
        self.last_error: str | None = None
        self._probed = float("-inf")
        self._recorded: tuple[bool, float] | None = None  # (reachable, monotonic time) last written

    def due(self) -> bool:
        """Whether ``interval`` has passed since the last probe."""
        return time.monotonic() - self._probed >= self.interval

    def check(self, producer: Producer, *, force: bool = False) -> bool:
        """Probe if due (or ``force``); return whether the broker answered the latest probe."""
        if force or self.due():
            self.probe(producer)
        return bool(self.reachable)

    def probe(self, producer: Producer) -> bool:
        """Ask for metadata now; record a change of state; return whether the broker answered."""
        started = datetime.now(UTC)
        self._probed = time.monotonic()
        try:
            producer.list_topics(_PROBE_TOPIC, timeout=self.probe_timeout)
        except KafkaException as exc:
            if self.reachable is not False:
                self.unreachable_since = started
                log.warning("the Kafka broker does not answer (since %s): %s", started.isoformat(), exc)
            self.reachable, self.last_error = False, f"the Kafka broker does not answer: {exc}"
        else:
            if self.reachable is False:
                log.info("the Kafka broker answers again (unreachable since %s)", self.unreachable_since)
            self.reachable, self.last_error, self.unreachable_since = True, None, None
        self._record()
        return self.reachable

    def _record(self) -> None:
        now = time.monotonic()
        last = self._recorded
        if last is not None and last[0] == self.reachable and now - last[1] < self.heartbeat:
            return
        try:
            record_broker_state(self.engine, since=self.unreachable_since, error=self.last_error)
        except RetriableError as exc:  # the database is down too: record on a later probe
            log.warning("could not record the Kafka broker's state: %s", exc)
            return
        self._recorded = (bool(self.reachable), now)
