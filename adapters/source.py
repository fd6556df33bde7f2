"""The polled side of an adapter: how to read a source's change feed, one page after another.

A polled system's adapter names a ``SourceApi`` subclass (``SourceAdapter.source``). It is a small
strategy object in the shape of dlt's paginators, and does no I/O itself:

* ``update_request(request, cursor, window)`` sets the query of the page after ``cursor``;
* ``update_state(response, cursor, window)`` reads that page: its records (each one body that the
  adapter's ``decode``/``classify`` accept), the cursor after it, whether more pages follow.

The hub's polling loop (``saleshub.receive.polling``) sends the requests (timeouts, rate limit,
retries), records each page's records and stores the cursor in one transaction; it never looks
inside a page. So a new polled system is an adapter with a ``SourceApi`` plus its settings.

Cursors follow the source's change order: ``updated_at`` (the last record's change time, as the
source wrote it) and ``tie`` (the key ordering records of one change time), or an opaque ``token``
while a listing is unfinished. A run starts ``overlap`` before the stored cursor (``start``), so rows
committed late are read again; the overlap is a reading position only: the stored cursor never moves
back (``ahead``). A record read twice is a no-op only when it is the same version: an adapter's
idempotency key for a polled record holds the source's revision or a digest of its content, never a
change time alone (two changes within the time's resolution are two events). A listing whose token
the source has expired (``token_expired_statuses``) is listed again from the stored time. ``Window``
bounds a backfill, and lets another reader (reconciliation) ask for "records updated in
[since, until)" with the same client.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

import httpx

__all__ = ["Cursor", "Page", "PageRequest", "SourceApi", "SourceRecord", "Window"]


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a source's change feed, in the source's own terms.

    ``updated_at`` is the change time of the last record read, as the source wrote it; ``tie`` the
    value ordering records of that same time (the ERP's ``HeaderId``); ``token`` the continuation
    token of a listing still being read. ``Cursor()`` is the beginning of the feed.
    """

    updated_at: str | None = None
    tie: str | None = None
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Window:
    """Records changed in ``[since, until)`` by the source's clock; ``None`` leaves that end open."""

    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record of a page, as the body of one inbound event (what the adapter's decode accepts)."""

    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class Page:
    """What one page held: its records, the cursor after it, whether more pages follow.

    ``total`` is how many records the source says are left from this page on, when it says so.
    """

    records: list[SourceRecord]
    cursor: Cursor
    has_more: bool
    total: int | None = None


@dataclass(slots=True)
class PageRequest:
    """The parts of a page request a ``SourceApi`` sets: query parameters and headers."""

    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class SourceApi(ABC):
    """How to page through one source system's change feed (see the module docstring).

    Subclasses set ``system``, ``path`` (relative to the configured base URL) and ``accept``, and
    implement the time format and the two strategy hooks, each with ``@override``.
    """

    system: ClassVar[str]
    path: ClassVar[str]
    accept: ClassVar[str]
    #: Answers to a request carrying a continuation token that mean "this token has expired".
    token_expired_statuses: ClassVar[frozenset[int]] = frozenset({410})

    def __init__(self, *, page_size: int = 500, overlap: timedelta = timedelta(minutes=5)) -> None:
        self.page_size = page_size
        self.overlap = overlap

    @abstractmethod
    def parse_time(self, text: str) -> datetime:
        """A change time as the source writes it, as a ``datetime`` (aware if the source says)."""

    @abstractmethod
    def format_time(self, moment: datetime) -> str:
        """``moment`` written as the source writes change times (for filters and rewinds)."""

    @abstractmethod
    def update_request(self, request: PageRequest, cursor: Cursor, window: Window) -> None:
        """Set ``request`` to ask for the page after ``cursor`` within ``window``."""

    @abstractmethod
    def update_state(self, response: httpx.Response, cursor: Cursor, window: Window) -> Page:
        """Read the page answering the request for ``cursor``; raises ``SourcePageError``."""

    def start(self, stored: Cursor | None, window: Window) -> Cursor:
        """Where a run begins: ``overlap`` before ``stored``, but not before the window's start.

        The run reads every record from there on. An unfinished listing's token is dropped: a new
        run lists again from a time, so a token the source has expired meanwhile cannot stop it.
        """
        starts: list[datetime] = []
        if stored is not None and stored.updated_at is not None:
            starts.append(self.parse_time(stored.updated_at) - self.overlap)
        if window.since is not None:  # in the source's own terms (offset or local time)
            starts.append(self.parse_time(self.format_time(window.since)))
        return Cursor(updated_at=self.format_time(max(starts))) if starts else Cursor()

    def tie_order(self, tie: str) -> tuple[int, str]:
        """The sort value of a ``tie``: its text (an adapter whose ties are numbers overrides it)."""
        return (0, tie)

    def ahead(self, cursor: Cursor, stored: Cursor | None) -> bool:
        """Whether ``cursor`` is past ``stored`` in the change order (a stored cursor only moves on)."""
        if stored is None or stored.updated_at is None:
            return True
        if cursor.updated_at is None:
            return False
        new, old = self.parse_time(cursor.updated_at), self.parse_time(stored.updated_at)
        if new != old:
            return new > old
        if cursor.tie is None or stored.tie is None:  # no tie: before every record of that time
            return cursor.tie is not None and stored.tie is None
        return self.tie_order(cursor.tie) > self.tie_order(stored.tie)

    def describe(self, cursor: Cursor | None) -> str:
        """The cursor in words for ``saleshub poll status``."""
        if cursor is None or (cursor.updated_at is None and cursor.token is None):
            return "(start of the feed)"
        parts = [cursor.updated_at or ""]
        if cursor.tie:
            parts.append(f"after {cursor.tie}")
        if cursor.token:
            parts.append("(listing unfinished)")
        return " ".join(part for part in parts if part)
