"""Polling the ERP: Oracle Fusion's "Sales Orders for Order Hub" REST resource, page by key.

``GET {base_url}/fscmRestApi/resources/11.13.18.05/salesOrdersForOrderHub`` with the REST
framework's conventions: ``q`` (a row filter), ``orderBy``, ``limit``/``offset`` with ``hasMore`` in
the answer, ``expand`` of the child resources, ``onlyData=true`` (no links), and ``totalResults=true``
on a run's first page (for a progress bar).

Offsets are never trusted: a row updated while a sync pages through the feed moves to its end and
shifts every row after it, so offset N no longer means what it did. Each page is asked for **after
the last row read**, by key: records sorted by ``LastUpdateDate`` then ``HeaderId`` (the tie-breaker
when many rows share one time), ``offset`` always 0::

    q=(LastUpdateDate > 'T' or (LastUpdateDate = 'T' and HeaderId > H))

A run starts ``overlap`` before the stored cursor with ``LastUpdateDate >= 'T - overlap'``, so a row
that committed late with an earlier time is still read; a row read twice unchanged has the same
idempotency key (``OrderKey@LastUpdateDate#digest`` of its content) and records nothing, while a row
changed again within the same second is a new event. A page whose rows are not in that order, or that
starts before its cursor, is refused (``SourcePageError``) before anything of it is recorded: the
keyset would skip rows otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from typing_extensions import override

from adapters.api import (
    Cursor,
    DecodeError,
    Page,
    PageRequest,
    SourceApi,
    SourcePageError,
    SourceRecord,
    Window,
    split_json_page,
)

__all__ = ["EXPAND", "ORDER_HUB_PATH", "OrderHubApi"]

ORDER_HUB_PATH = "/fscmRestApi/resources/11.13.18.05/salesOrdersForOrderHub"
#: The child resources the mapping reads (``mappings/erp/order.yaml``).
EXPAND = "lines,billToCustomer,shipToCustomer,totals"
_ORDER = "LastUpdateDate:asc,HeaderId:asc"
#: A page may hold ``page_size`` orders of up to this many bytes each.
_MAX_ORDER_BYTES = 1 << 20

_Key = tuple[datetime, int]


class OrderHubApi(SourceApi):
    """The ERP's sales orders, paged by ``(LastUpdateDate, HeaderId)`` (see the module docstring)."""

    system: ClassVar[str] = "erp"
    path: ClassVar[str] = ORDER_HUB_PATH
    accept: ClassVar[str] = "application/json"

    @override
    def parse_time(self, text: str) -> datetime:
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    @override
    def format_time(self, moment: datetime) -> str:
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="milliseconds")

    @override
    def update_request(self, request: PageRequest, cursor: Cursor, window: Window) -> None:
        conditions: list[str] = []
        if cursor.updated_at is not None:
            at = _literal(cursor.updated_at)
            if cursor.tie is None:
                conditions.append(f"LastUpdateDate >= '{at}'")
            else:
                tie = int(cursor.tie)
                conditions.append(
                    f"(LastUpdateDate > '{at}' or (LastUpdateDate = '{at}' and HeaderId > {tie}))"
                )
        if window.until is not None:
            conditions.append(f"LastUpdateDate < '{self.format_time(window.until)}'")
        request.params.update(
            onlyData="true", expand=EXPAND, orderBy=_ORDER, limit=str(self.page_size), offset="0"
        )
        if conditions:
            request.params["q"] = " and ".join(conditions)
        if cursor.tie is None:  # a run's first page: how many rows are left (for progress)
            request.params["totalResults"] = "true"
        request.headers["Accept"] = self.accept

    @override
    def update_state(self, response: httpx.Response, cursor: Cursor, window: Window) -> Page:
        try:
            members, items = split_json_page(
                self.system, response.content, "items", self.page_size * _MAX_ORDER_BYTES
            )
        except DecodeError as exc:
            raise SourcePageError(
                self.system, exc.reason + (f" at {exc.position}" if exc.position else "")
            ) from None
        has_more = members.get("hasMore")
        if not isinstance(has_more, bool):
            raise SourcePageError(self.system, "hasMore must be true or false")
        last = self._cursor_key(cursor)
        next_cursor = cursor
        for index, (_, item) in enumerate(items):
            key = self._key(item)
            if key is None:  # recorded (and quarantined if the adapter refuses it); cannot move the cursor
                continue
            if last is not None and key <= last:
                raise SourcePageError(
                    self.system,
                    f"item {index} (HeaderId {key[1]}, LastUpdateDate {item['LastUpdateDate']}) is not after "
                    f"{self.describe(next_cursor)}; the source must sort by {_ORDER} and honour q",
                )
            last = key
            next_cursor = Cursor(updated_at=str(item["LastUpdateDate"]), tie=str(key[1]))
        if has_more and next_cursor == cursor:
            raise SourcePageError(self.system, "hasMore is true but no item has LastUpdateDate and HeaderId")
        total = members.get("totalResults")
        return Page(
            [SourceRecord(raw, "application/json") for raw, _ in items],
            next_cursor,
            has_more,
            total if type(total) is int else None,
        )

    @override
    def tie_order(self, tie: str) -> tuple[int, str]:
        return (int(tie), "")

    def _cursor_key(self, cursor: Cursor) -> _Key | None:
        if cursor.updated_at is None:
            return None
        return (self.parse_time(cursor.updated_at), int(cursor.tie) if cursor.tie is not None else -1)

    def _key(self, item: Any) -> _Key | None:
        if not isinstance(item, dict):
            return None
        updated, header = item.get("LastUpdateDate"), item.get("HeaderId")
        if not isinstance(updated, str) or type(header) is not int or "'" in updated:
            return None
        try:
            return (self.parse_time(updated), header)
        except ValueError:
            return None


def _literal(text: str) -> str:
    if "'" in text:  # never from the source's own records (checked there); a stored cursor is ours
        raise SourcePageError("erp", f"a cursor time cannot contain a quote: {text!r}")
    return text
