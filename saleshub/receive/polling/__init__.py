"""Polling: a receive transport that reads source APIs (the ERP, Tempo) and records what they hold.

``http`` (the HTTP client: timeouts, keep-alive, rate limit, retries), ``loop`` (one run of a feed:
pages recorded with their cursor in one transaction), ``scheduler`` (the pollers inside ``saleshub
serve``). How to ask a source for a page and read it belongs to the adapter (``adapters.source``).
"""

from __future__ import annotations

from saleshub.receive.polling.loop import PageProgress, Poller, RunResult
from saleshub.receive.polling.scheduler import PollingHub, build_poller, build_pollers, start_pollers

__all__ = [
    "PageProgress",
    "Poller",
    "PollingHub",
    "RunResult",
    "build_poller",
    "build_pollers",
    "start_pollers",
]
