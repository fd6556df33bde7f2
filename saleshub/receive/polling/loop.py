"""The polling loop: read a source's pages, record each page's events and move the cursor, together.

One run of one system's feed (``incremental``, or a ``backfill`` of a window):

1. take the feed's PostgreSQL advisory lock on a connection held for the run; if another process
   holds it, skip (two hub processes never poll one feed at once);
2. close as ``interrupted`` the feed's runs still open (their process died: the lock was free), open
   a ``poll_runs`` row and read the stored cursor; the run starts ``overlap`` before it (the
   adapter's ``SourceApi.start``), so rows the source committed late are read again;
3. page after page (``SourceClient``): admit every record like any inbound event (transport
   ``poll``), then in **one transaction** record them (``Recorder.record_many``) and store the cursor
   after the page, unless the page lies behind it (inside the overlap): the stored cursor never
   moves back, so failed or killed runs cannot walk it backwards. A crash between two pages resumes
   from the last committed page: nothing skipped, nothing recorded twice (a record read again
   unchanged has the same idempotency key and writes nothing; one changed again under the same
   change time has another key and is recorded). A continuation token the source has expired
   (``SourceTokenExpiredError``) makes the run list again from the stored cursor, with the overlap,
   up to ``attempts`` times in a row without a page read;
4. close the run. A failed incremental run counts towards pausing the system
   (``pause_after_failures`` in a row, or at once when the source refuses the request with a 4xx a
   retry cannot fix, such as 401 or 403); a paused system's scheduled runs are skipped until
   ``saleshub poll resume``.

A backfill keeps its own cursor (stream ``backfill``, with its window), so it never moves the
incremental one, and resumes where it stopped when started again with the same window.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import httpx
from sqlalchemy import Connection, Engine

from adapters.base import SourceAdapter
from adapters.source import Cursor, Page, SourceApi, SourceRecord, Window
from saleshub.errors import ConfigurationError, SalesHubError, SourceTokenExpiredError
from saleshub.platform.secrets import SecretStore
from saleshub.platform.settings import SystemPollSettings
from saleshub.platform.telemetry import NoTelemetry, Telemetry
from saleshub.receive.intake import InboundEvent, admit
from saleshub.receive.polling.http import SourceClient, source_auth
from saleshub.receive.recorder import Item, Recorder
from saleshub.store import polling as store
from saleshub.store.failures import database_errors, first_line
from saleshub.store.polling import CursorRow, Stream

__all__ = ["Outcome", "PageProgress", "Poller", "RunResult", "polled_items"]

log = logging.getLogger(__name__)

Outcome = Literal["completed", "failed", "stopped", "skipped", "paused"]


@dataclass(frozen=True, slots=True)
class PageProgress:
    """After each recorded page: this run's totals, the feed's totals, and the source's count left."""

    pages: int
    orders: int
    recorded: int
    errors: int
    feed_records: int
    remaining: int | None
    cursor: Cursor


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one run did; ``error`` says why it failed, was skipped or is paused."""

    system: str
    stream: Stream
    outcome: Outcome
    run_id: uuid.UUID | None = None
    pages: int = 0
    orders: int = 0
    recorded: int = 0
    errors: int = 0
    error: str | None = None
    paused: bool = False
    cursor: Cursor | None = None


@dataclass(slots=True)
class _Counts:
    pages: int = 0
    orders: int = 0
    recorded: int = 0
    errors: int = 0


class Poller:
    """Runs one system's feed (see the module docstring)."""

    def __init__(
        self,
        adapter: SourceAdapter,
        engine: Engine,
        recorder: Recorder,
        settings: SystemPollSettings,
        secrets: SecretStore,
        *,
        telemetry: Telemetry | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        source = adapter.source
        if source is None:
            raise ConfigurationError(f"the {adapter.system} adapter has no source API to poll")
        self.system, self.adapter, self.source = adapter.system, adapter, source
        self.engine, self.recorder = engine, recorder
        self.settings, self.secrets = settings, secrets
        self.telemetry = telemetry or NoTelemetry()
        self._transport, self._sleep = transport, sleep

    def api(self) -> SourceApi:
        """The adapter's source API with this system's page size and overlap."""
        return self.source(
            page_size=self.settings.page_size, overlap=timedelta(seconds=self.settings.overlap_seconds)
        )

    def client(self) -> SourceClient:
        """An HTTP client of the source, with credentials read from the secret store now."""
        auth = source_auth(self.system, self.settings, self.secrets)
        return SourceClient(self.api(), self.settings, auth, transport=self._transport, sleep=self._sleep)

    def run(
        self,
        *,
        stream: Stream = "incremental",
        window: Window | None = None,
        started_by: str = "command",
        stop: threading.Event | None = None,
        force: bool = False,
        on_page: Callable[[PageProgress], None] | None = None,
    ) -> RunResult:
        """One run of the feed; never raises for a source's or the database's failure (see ``error``).

        ``force`` runs a paused system (an operator's explicit ``saleshub poll run``); a completed
        forced run lifts the pause.
        """
        window = window or Window()
        try:
            with database_errors():
                lock = self.engine.connect()
        except SalesHubError as exc:
            return RunResult(self.system, stream, "failed", error=str(exc))
        try:
            with database_errors():
                if not store.try_lock(lock, self.system, stream):
                    why = f"another process is polling {self.system} ({stream}); this run is skipped"
                    return RunResult(self.system, stream, "skipped", error=why)
            try:
                return self._run_locked(stream, window, started_by, stop, force, on_page)
            finally:
                self._unlock(lock, stream)
        except SalesHubError as exc:  # the database failed before or after the run's own handling
            return RunResult(self.system, stream, "failed", error=str(exc))
        finally:
            lock.close()

    def _unlock(self, lock: Connection, stream: Stream) -> None:
        try:
            store.unlock(lock, self.system, stream)
        except Exception:  # the session may be gone; dropping it releases the lock all the same
            log.warning(
                "could not release the %s poll lock; dropping its connection", self.system, exc_info=True
            )
            lock.invalidate()

    def _begin(
        self, stream: Stream, window: Window, started_by: str, force: bool
    ) -> tuple[uuid.UUID | None, CursorRow, str | None]:
        with database_errors(), self.engine.begin() as conn:
            interrupted = store.close_interrupted_runs(conn, self.system, stream)
            if interrupted:
                log.warning(
                    "%d run(s) of %s (%s) ended without closing (their process died): closed as interrupted",
                    interrupted,
                    self.system,
                    stream,
                )
            if stream == "incremental":
                state = store.poller_states(conn, [self.system]).get(self.system)
                if state is not None and state.paused_at is not None and not force:
                    return None, CursorRow(), state.paused_reason
            stored = store.load_cursor(conn, self.system, stream)
            if stream == "backfill" and (
                stored is None
                or stored.finished_at is not None
                or (stored.window_since, stored.window_until) != (window.since, window.until)
            ):
                stored = CursorRow(window_since=window.since, window_until=window.until)
            run_id = store.start_run(conn, self.system, stream, started_by)
        return run_id, stored or CursorRow(), None

    def _run_locked(
        self,
        stream: Stream,
        window: Window,
        started_by: str,
        stop: threading.Event | None,
        force: bool,
        on_page: Callable[[PageProgress], None] | None,
    ) -> RunResult:
        run_id, stored, paused_reason = self._begin(stream, window, started_by, force)
        if run_id is None:
            return RunResult(self.system, stream, "paused", error=paused_reason, paused=True)
        counts = _Counts()
        outcome: Outcome = "stopped"
        try:
            with self.client() as client:
                api = client.api
                cursor = api.start(_position(stored), window)
                remaining: int | None = None
                relists = 0
                while stop is None or not stop.is_set():
                    with self.telemetry.span("poll", system=self.system, stream=stream):
                        try:
                            page = client.page(cursor, window)
                        except SourceTokenExpiredError as exc:
                            relists += 1
                            if relists > self.settings.attempts:
                                raise
                            log.info("%s; listing %s again from the stored cursor", exc, self.system)
                            cursor = api.start(_position(stored), window)
                            continue
                        relists = 0
                        stored = self._record(api, page, run_id, stream, stored, counts)
                    remaining = page.total if page.total is not None else remaining
                    if remaining is not None:
                        remaining = max(0, remaining - len(page.records))
                    cursor = page.cursor
                    if on_page is not None:
                        on_page(
                            PageProgress(
                                **asdict(counts),
                                feed_records=stored.records,
                                remaining=remaining,
                                cursor=cursor,
                            )
                        )
                    if not page.has_more:
                        outcome = "completed"
                        break
        except SalesHubError as exc:
            return self._failed(run_id, stream, counts, exc)
        except (
            BaseException
        ) as exc:  # a bug, or Ctrl+C / SIGTERM in a command: close the run, go on unwinding
            self._close_run(run_id, "failed" if isinstance(exc, Exception) else "stopped", _error_text(exc))
            raise
        self._close_run(run_id, outcome, None, succeeded=stream == "incremental" and outcome == "completed")
        return RunResult(
            self.system,
            stream,
            outcome,
            run_id,
            **asdict(counts),
            cursor=cursor,
        )

    def _record(
        self,
        api: SourceApi,
        page: Page,
        run_id: uuid.UUID,
        stream: Stream,
        stored: CursorRow,
        counts: _Counts,
    ) -> CursorRow:
        items = polled_items(self.adapter, page.records, {"poll-run": str(run_id)})
        advanced = replace(
            stored,
            token=page.cursor.token,
            pages=stored.pages + 1,
            records=stored.records + len(page.records),
        )
        if api.ahead(page.cursor, _position(stored)):  # a page inside the overlap leaves it where it was
            advanced = replace(advanced, updated_at=page.cursor.updated_at, tie=page.cursor.tie)
        counts.pages += 1
        counts.orders += len(page.records)
        with database_errors(), self.engine.begin() as conn:
            receipts = self.recorder.record_many(conn, items)
            new = [receipt for receipt in receipts if not receipt.repeated]
            counts.recorded += len(new)
            counts.errors += sum(1 for receipt in new if receipt.refused)
            end = not page.has_more
            store.save_cursor(
                conn,
                self.system,
                stream,
                advanced,
                caught_up=end and stream == "incremental",
                finished=end and stream == "backfill",
            )
            store.progress_run(conn, run_id, **asdict(counts))
        self.recorder.count(items, receipts)
        return advanced

    def _failed(self, run_id: uuid.UUID, stream: Stream, counts: _Counts, exc: SalesHubError) -> RunResult:
        error = _error_text(exc)
        log.warning("polling %s (%s) failed: %s", self.system, stream, error)
        paused = False
        with database_errors(), self.engine.begin() as conn:
            store.finish_run(conn, run_id, "failed", error)
            if stream == "incremental":
                paused = store.run_failed(
                    conn,
                    self.system,
                    error,
                    pause_after=self.settings.pause_after_failures,
                    pause_now=isinstance(exc, ConfigurationError),
                )
        if paused:
            log.error("polling %s is paused: %s (saleshub poll resume %s)", self.system, error, self.system)
        return RunResult(
            self.system,
            stream,
            "failed",
            run_id,
            **asdict(counts),
            error=error,
            paused=paused,
        )

    def _close_run(
        self, run_id: uuid.UUID, outcome: str, error: str | None, *, succeeded: bool = False
    ) -> None:
        with database_errors(), self.engine.begin() as conn:
            store.finish_run(conn, run_id, outcome, error)
            if succeeded:
                store.run_succeeded(conn, self.system)


def polled_items(
    adapter: SourceAdapter, records: Sequence[SourceRecord], headers: Mapping[str, str]
) -> list[Item]:
    """The admitted events of ``records`` as a poller records them (transport ``poll``, one time)."""
    received_at = datetime.now(UTC)
    items: list[Item] = []
    for record in records:
        event = InboundEvent(
            adapter.system,
            "poll",
            record.body,
            record.content_type,
            headers=dict(headers),
            received_at=received_at,
        )
        items.append((event, admit(event, adapter)))
    return items


def _position(stored: CursorRow) -> Cursor | None:
    """The stored cursor as a feed position; ``None`` before the feed's first page."""
    return Cursor(stored.updated_at, stored.tie, stored.token) if stored.updated_at else None


def _error_text(exc: BaseException) -> str:
    return first_line(exc) or type(exc).__name__
