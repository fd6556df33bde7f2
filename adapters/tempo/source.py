"""Polling Tempo: pages of changed service orders (namespaced XML) with a continuation token.

``GET {base_url}/api/v2/service-orders/changes?modifiedSince=T[&modifiedBefore=U]&pageSize=N`` lists
the orders changed at or after ``T`` (local Polish time, like every Tempo time), sorted by their change
time then ``OrderNumber``; the next page is ``?continuationToken=…&pageSize=N`` while the page carries
a ``ContinuationToken``. The page contract is ``contracts/xsd/tempo-orderpage-2.xsd``::

    <tpg:OrderPage xmlns:tpg="urn:tempo:orderpage:2" xmlns:tso="urn:tempo:serviceorder:2" total="…">
      <tpg:Item sequence="3" action="CHANGE" modifiedAt="2026-11-23T08:00:00">
        <tso:Order>…</tso:Order>
      </tpg:Item>
      <tpg:ContinuationToken>…</tpg:ContinuationToken>
    </tpg:OrderPage>

Each item becomes one ``tso:ServiceOrderMessage`` (the webhook's message), with the item's action and
sequence and the ``messageId`` ``poll:<OrderNumber>:<sequence>`` (the order's revision, so two changes
within one second are two events), so an item read twice records nothing the second time. A run
starts ``overlap`` before the last change time read (inclusive), never from a token the source may
have expired; a token that expires while a run pages (410) makes the run list again from its stored
time (``SourceApi.token_expired_statuses``).

Token paging is at least once: a page may start with items the previous page ended with. An item
the listing already read (on the previous page or earlier on this one: the same change time, order
and sequence) is left out; one with the same change time and order but another sequence (changed again
within the second) is kept without moving the cursor back; any other item that is not after the one
before is a real step backwards and refuses the page.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

import httpx
from lxml import etree
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
    decode_xml,
)

__all__ = ["CHANGES_PATH", "PAGE_NAMESPACE", "TempoChangesApi", "wrap_order"]

PAGE_NAMESPACE = "urn:tempo:orderpage:2"
CHANGES_PATH = "/api/v2/service-orders/changes"
_MESSAGE_NAMESPACE = "urn:tempo:serviceorder:2"  # adapters.tempo.TEMPO_NAMESPACE (that module imports this)
_PAGE = f"{{{PAGE_NAMESPACE}}}OrderPage"
_ITEM = f"{{{PAGE_NAMESPACE}}}Item"
_TOKEN = f"{{{PAGE_NAMESPACE}}}ContinuationToken"
_ORDER = f"{{{_MESSAGE_NAMESPACE}}}Order"
_NUMBER = f"{{{_MESSAGE_NAMESPACE}}}OrderNumber"
_WARSAW = ZoneInfo("Europe/Warsaw")
_MAX_ORDER_BYTES = 1 << 20

_Item = tuple[datetime, str, str | None]  # an item's change time, OrderNumber and sequence


def wrap_order(item: etree._Element) -> bytes:
    """One page item as the ``ServiceOrderMessage`` a webhook would have sent (UTF-8 bytes).

    Attributes the item lacks stay absent, so the adapter's ``classify`` refuses (and the hub
    quarantines) exactly that record.
    """
    message = etree.Element(f"{{{_MESSAGE_NAMESPACE}}}ServiceOrderMessage", nsmap={"tso": _MESSAGE_NAMESPACE})
    number = (item.findtext(f"{_ORDER}/{_NUMBER}") or "").strip()
    sequence = item.get("sequence")
    if number and sequence:
        message.set("messageId", f"poll:{number}:{sequence}")
    for name, value in (
        ("action", item.get("action")),
        ("sequence", sequence),
        ("sentAt", item.get("modifiedAt")),
    ):
        if value is not None:
            message.set(name, value)
    for order in item.iterfind(_ORDER):
        message.append(order)  # moved, not copied: the page is not used afterwards
    return etree.tostring(message, xml_declaration=True, encoding="UTF-8")


class TempoChangesApi(SourceApi):
    """Tempo's change feed of service orders (see the module docstring)."""

    system: ClassVar[str] = "tempo"
    path: ClassVar[str] = CHANGES_PATH
    accept: ClassVar[str] = "application/xml"

    def __init__(self, *, page_size: int = 500, overlap: timedelta = timedelta(minutes=5)) -> None:
        super().__init__(page_size=page_size, overlap=overlap)
        self._recent: set[_Item] = set()  # the items of the page read last

    @override
    def parse_time(self, text: str) -> datetime:
        moment = datetime.fromisoformat(text)
        return moment.astimezone(_WARSAW).replace(tzinfo=None) if moment.tzinfo is not None else moment

    @override
    def format_time(self, moment: datetime) -> str:
        local = moment.astimezone(_WARSAW).replace(tzinfo=None) if moment.tzinfo is not None else moment
        return local.isoformat(timespec="seconds")

    @override
    def update_request(self, request: PageRequest, cursor: Cursor, window: Window) -> None:
        request.params["pageSize"] = str(self.page_size)
        if cursor.token is not None:
            request.params["continuationToken"] = cursor.token
        else:
            if cursor.updated_at is not None:
                request.params["modifiedSince"] = cursor.updated_at
            if window.until is not None:
                request.params["modifiedBefore"] = self.format_time(window.until)
        request.headers["Accept"] = self.accept

    @override
    def update_state(self, response: httpx.Response, cursor: Cursor, window: Window) -> Page:
        try:
            root = decode_xml(self.system, response.content, self.page_size * _MAX_ORDER_BYTES)
        except DecodeError as exc:
            raise SourcePageError(
                self.system, exc.reason + (f" at {exc.position}" if exc.position else "")
            ) from None
        if root.tag != _PAGE:
            raise SourcePageError(
                self.system, f"the root element must be OrderPage in {PAGE_NAMESPACE}; got {root.tag}"
            )
        token = (root.findtext(_TOKEN) or "").strip() or None
        last = self._key(cursor.updated_at, cursor.tie) if cursor.tie is not None else None
        updated_at, tie = cursor.updated_at, cursor.tie
        records: list[SourceRecord] = []
        read: set[_Item] = set()
        if cursor.token is None:  # a listing's first page: nothing read in it yet
            self._recent = set()
        known = {seen[:2] for seen in self._recent}  # (change time, OrderNumber) read in this listing
        items = 0
        for index, item in enumerate(root.iterfind(_ITEM)):
            items += 1
            key = self._key(item.get("modifiedAt"), item.findtext(f"{_ORDER}/{_NUMBER}"))
            if key is not None:
                this = (*key, item.get("sequence"))
                repeated = this in read or this in self._recent
                read.add(this)
                if repeated:
                    continue  # read already in this run (at-least-once paging): a no-op
                if last is not None and key <= last:
                    if key not in known:
                        raise SourcePageError(
                            self.system,
                            f"item {index} ({key[1]} changed {item.get('modifiedAt')}) is not after the "
                            "item before; the source must sort by change time, then OrderNumber",
                        )
                    # changed again within the second: a new event; the cursor stays where it is
                else:
                    last, updated_at, tie = key, item.get("modifiedAt"), key[1]
                known.add(key)
            records.append(SourceRecord(wrap_order(item), "application/xml"))
        self._recent = read
        if token is not None and not items:
            raise SourcePageError(self.system, "a continuation token on a page without items")
        total = root.get("total")
        return Page(
            records,
            Cursor(updated_at=updated_at, tie=tie, token=token),
            token is not None,
            int(total) if total is not None and total.isdigit() else None,
        )

    def _key(self, updated_at: str | None, number: str | None) -> tuple[datetime, str] | None:
        if not updated_at or not number or not number.strip():
            return None
        try:
            return (self.parse_time(updated_at), number.strip())
        except ValueError:
            return None
