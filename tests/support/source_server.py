"""A loopback source API for the pollers' tests and benchmark: Oracle-style and Tempo-style pages.

``SourceServer`` runs a Starlette app under uvicorn on a free loopback port, in a thread, serving:

* ``GET /fscmRestApi/resources/11.13.18.05/salesOrdersForOrderHub``: the ERP's "Sales Orders for Order
  Hub" conventions the hub uses: ``q`` (the conditions on ``LastUpdateDate`` and ``HeaderId`` the
  poller writes), ``orderBy=LastUpdateDate:asc,HeaderId:asc``, ``limit``/``offset`` with ``hasMore``,
  ``totalResults=true``, ``onlyData``; Basic authentication;
* ``GET /api/v2/service-orders/changes``: Tempo's change pages (``modifiedSince``, ``modifiedBefore``,
  ``pageSize``, ``continuationToken``) as ``contracts/xsd/tempo-orderpage-2.xsd`` describes.

The data set (``ErpData``, ``TempoData``) belongs to the test, which changes it while the poller
runs: ``update`` gives an order a new revision at the source's current time (its ``clock_skew``
puts that clock behind or ahead of the hub's). ``faults`` is a queue of scripted answers
(``Fault(status=429, retry_after="1")``, ``Fault(delay=3)`` …) served before the real page;
``before_page`` is called (with the page's number) before each real page is built, so a test can
change the data between two pages. ``requests`` counts what was asked. ``TempoData(repeat=N)`` pages
at least once, as token paging may: each page after the first starts with the previous page's last
``N`` items again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.synthetic import erp_order, tempo_order

__all__ = ["ErpData", "Fault", "SourceServer", "TempoData", "erp_time"]

ERP_PATH = "/fscmRestApi/resources/11.13.18.05/salesOrdersForOrderHub"
TEMPO_PATH = "/api/v2/service-orders/changes"
USERNAME, PASSWORD = "hub-poller", "synthetic-source-password"


def erp_time(moment: datetime) -> str:
    """A change time as the ERP writes it (UTC, milliseconds)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass
class Fault:
    """A scripted answer: ``status`` (with ``Retry-After``), or a ``delay`` before the real page."""

    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0


class ErpData:
    """ERP orders by ``HeaderId``; sorted by (LastUpdateDate, HeaderId) on demand."""

    def __init__(self, clock_skew: timedelta = timedelta(0)) -> None:
        self.lock = threading.RLock()
        self.clock_skew = clock_skew
        self.orders: dict[int, dict[str, Any]] = {}
        self._bodies: dict[int, bytes] = {}
        self._sorted: list[tuple[datetime, int]] | None = None
        self._tick = 0

    def now(self) -> str:
        """The source's clock, each call at least a millisecond after the last (like a database)."""
        with self.lock:
            self._tick += 1
            return erp_time(datetime.now(UTC) + self.clock_skew + timedelta(microseconds=self._tick * 1000))

    def put(self, order: dict[str, Any]) -> None:
        """Store ``order`` as it is (malformed ones too, as long as they have HeaderId and LastUpdateDate)."""
        with self.lock:
            self.orders[order["HeaderId"]] = order
            self._bodies[order["HeaderId"]] = json.dumps(order, ensure_ascii=False).encode()
            self._sorted = None

    def add(self, numbers: range | list[int], *, updated_at: str | None = None) -> None:
        """New orders (revision 1) changed ``updated_at`` (default: now on the source's clock)."""
        for number in numbers:
            self.put(erp_order(number, updated_at=updated_at or self.now()))

    def update(self, number: int, *, updated_at: str | None = None) -> None:
        """The order's next revision, changed now (or at ``updated_at``)."""
        with self.lock:
            current = self.orders[300_000_000_000_000 + number]
            revision = current["SourceTransactionRevisionNumber"] + 1
            self.put(
                erp_order(
                    number, revision=revision, updated_at=updated_at or self.now(), notes=f"r{revision}"
                )
            )

    def expected(self) -> set[tuple[str, int]]:
        """(order number, revision) of every well-formed order: what the hub must end with."""
        with self.lock:
            return {
                (order["OrderNumber"], order["SourceTransactionRevisionNumber"])
                for order in self.orders.values()
                if isinstance(order.get("OrderNumber"), str)
                and type(order.get("SourceTransactionRevisionNumber")) is int
            }

    def _keys(self) -> list[tuple[datetime, int]]:
        if self._sorted is None:
            self._sorted = sorted(
                (datetime.fromisoformat(order["LastUpdateDate"]), header)
                for header, order in self.orders.items()
            )
        return self._sorted

    def page(self, q: str, limit: int, offset: int, total: bool) -> bytes:
        """An Order Hub page for the poller's ``q``, ``limit`` and ``offset``."""
        with self.lock:
            keys = self._keys()
            low, high = 0, len(keys)
            since = re.search(r"LastUpdateDate >= '([^']+)'", q)
            after = re.search(
                r"\(LastUpdateDate > '([^']+)' or \(LastUpdateDate = '([^']+)' and HeaderId > (\d+)\)\)", q
            )
            until = re.search(r"LastUpdateDate < '([^']+)'", q)
            if since:
                low = bisect_left(keys, (datetime.fromisoformat(since.group(1)), -1))
            if after:
                low = bisect_right(keys, (datetime.fromisoformat(after.group(1)), int(after.group(3))))
            if until:
                high = bisect_left(keys, (datetime.fromisoformat(until.group(1)), -1))
            matching = keys[low:high]
            chosen = matching[offset : offset + limit]
            items = b",".join(self._bodies[header] for _, header in chosen)
            tail: dict[str, Any] = {
                "count": len(chosen),
                "hasMore": offset + limit < len(matching),
                "limit": limit,
                "offset": offset,
            }
            if total:
                tail["totalResults"] = len(matching)
        return b'{"items":[' + items + b"]," + json.dumps(tail).encode()[1:]


class TempoData:
    """Tempo orders by number: (sequence, action, modifiedAt, the tso:Order XML).

    ``repeat``: a continuation token points ``repeat`` items before the page's end, so the next page
    repeats them (at-least-once paging).
    """

    def __init__(self, clock_skew: timedelta = timedelta(0), *, repeat: int = 0) -> None:
        self.lock = threading.RLock()
        self.clock_skew = clock_skew
        self.repeat = repeat
        self.orders: dict[int, tuple[int, str, str, bytes]] = {}

    def now(self) -> str:
        """The source's clock (local Polish time, seconds)."""
        from zoneinfo import ZoneInfo

        local = datetime.now(ZoneInfo("Europe/Warsaw")) + self.clock_skew
        return local.replace(tzinfo=None).isoformat(timespec="seconds")

    def add(self, numbers: range | list[int], *, modified_at: str | None = None) -> None:
        """New orders (sequence 1)."""
        with self.lock:
            for number in numbers:
                at = modified_at or self.now()
                self.orders[number] = (1, "NEW", at, tempo_order(number, modified_at=at))

    def update(self, number: int, *, modified_at: str | None = None) -> None:
        """The order's next sequence, changed now."""
        with self.lock:
            sequence = self.orders[number][0] + 1
            at = modified_at or self.now()
            self.orders[number] = (
                sequence,
                "CHANGE",
                at,
                tempo_order(number, modified_at=at, remarks=f"r{sequence}"),
            )

    def expected(self) -> set[tuple[str, int]]:
        """(order number, sequence) of every order."""
        with self.lock:
            return {(f"PL/SYN/{number:09d}", entry[0]) for number, entry in self.orders.items()}

    def page(self, since: str | None, before: str | None, after: tuple[str, str] | None, size: int) -> bytes:
        """A change page and, if more follow, its continuation token."""
        with self.lock:
            rows = sorted((entry[2], f"PL/SYN/{number:09d}", entry) for number, entry in self.orders.items())
        rows = [
            row
            for row in rows
            if (since is None or row[0] >= since)
            and (before is None or row[0] < before)
            and (after is None or (row[0], row[1]) > after)
        ]
        chosen = rows[:size]
        parts = [b'<tpg:OrderPage xmlns:tpg="urn:tempo:orderpage:2" xmlns:tso="urn:tempo:serviceorder:2">']
        for modified_at, _, (sequence, action, _, order) in chosen:
            parts.append(
                f'<tpg:Item sequence="{sequence}" action="{action}" modifiedAt="{modified_at}">'.encode()
            )
            parts.append(order)
            parts.append(b"</tpg:Item>")
        if len(rows) > size:
            anchor = chosen[-1 - self.repeat] if self.repeat < len(chosen) else chosen[-1]
            token = {"since": since, "before": before, "after": [anchor[0], anchor[1]]}
            encoded = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            parts.append(f"<tpg:ContinuationToken>{encoded}</tpg:ContinuationToken>".encode())
        parts.append(b"</tpg:OrderPage>")
        return b"".join(parts)


@dataclass
class _Counters:
    requests: int = 0
    pages: int = 0
    faults: int = 0


class SourceServer:
    """The loopback source API (see the module docstring); a context manager."""

    def __init__(
        self,
        erp: ErpData | None = None,
        tempo: TempoData | None = None,
        *,
        port: int | None = None,
        log_level: str = "warning",
    ) -> None:
        self.erp = erp or ErpData()
        self.tempo = tempo or TempoData()
        self.faults: deque[Fault] = deque()
        self.before_page: Callable[[int], None] | None = None
        self.page_delay = 0.0
        self.counters = _Counters()
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=[Route(ERP_PATH, self._erp), Route(TEMPO_PATH, self._tempo)])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level=log_level, access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> SourceServer:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the source server did not start within 120 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    async def _fault(self) -> Response | None:
        if not self.faults:
            if self.page_delay:
                await asyncio.sleep(self.page_delay)
            return None
        fault = self.faults.popleft()
        self.counters.faults += 1
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is None:
            return None
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        return Response(
            b'{"title": "scripted"}', fault.status, headers=headers, media_type="application/json"
        )

    def _next_page(self) -> None:
        self.counters.pages += 1
        if self.before_page is not None:
            self.before_page(self.counters.pages)

    async def _erp(self, request: Request) -> Response:
        self.counters.requests += 1
        expected = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return Response(b'{"title": "Unauthorized"}', 401, media_type="application/json")
        fault = await self._fault()
        if fault is not None:
            return fault
        params = request.query_params
        if params.get("orderBy") != "LastUpdateDate:asc,HeaderId:asc" or params.get("onlyData") != "true":
            return Response(b'{"title": "unexpected query"}', 400, media_type="application/json")
        self._next_page()
        body = self.erp.page(
            params.get("q", ""),
            int(params.get("limit", "25")),
            int(params.get("offset", "0")),
            params.get("totalResults") == "true",
        )
        return Response(body, media_type="application/json")

    async def _tempo(self, request: Request) -> Response:
        self.counters.requests += 1
        fault = await self._fault()
        if fault is not None:
            return fault
        params = request.query_params
        size = int(params.get("pageSize", "100"))
        self._next_page()
        token = params.get("continuationToken")
        if token is not None:
            state = json.loads(base64.urlsafe_b64decode(token))
            body = self.tempo.page(state["since"], state["before"], tuple(state["after"]), size)
        else:
            body = self.tempo.page(params.get("modifiedSince"), params.get("modifiedBefore"), None, size)
        return Response(body, media_type="application/xml")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> None:
    """Serve ``--erp-orders`` synthetic ERP orders (one per millisecond from 1 October 2026) until stopped."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--erp-orders", type=int, default=100_000)
    args = parser.parse_args()
    data = ErpData()
    base = datetime(2026, 10, 1, tzinfo=UTC)
    for number in range(1, args.erp_orders + 1):
        data.put(erp_order(number, updated_at=erp_time(base + timedelta(milliseconds=number))))
    data.page("", 1, 0, False)  # sort once before the first request
    server = SourceServer(data, port=args.port)
    print("ready", flush=True)
    server.server.run()


if __name__ == "__main__":
    main()
