"""The adapters' source APIs and the poller's HTTP client, without a network (httpx.MockTransport)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import xmlschema
from lxml import etree

from adapters.erp import ErpAdapter
from adapters.erp.source import OrderHubApi
from adapters.registry import AdapterRegistry
from adapters.source import Cursor, PageRequest, Window
from adapters.tempo.source import TempoChangesApi
from saleshub.errors import (
    SourcePageError,
    SourceRefusedError,
    SourceTokenExpiredError,
    SourceUnavailableError,
)
from saleshub.mapping.catalog import MappingCatalog
from saleshub.platform.settings import SystemPollSettings
from saleshub.receive.polling.http import RateLimit, SourceClient, retry_after_seconds
from tests.conftest import MAPPINGS, ROOT
from tests.support.synthetic import erp_order, tempo_order

T0 = "2026-11-18T08:45:03.481+00:00"


def _page(items: list[dict[str, object]], has_more: bool = False, **extra: object) -> httpx.Response:
    return httpx.Response(200, content=json.dumps({"items": items, "hasMore": has_more, **extra}).encode())


def test_erp_first_page_filters_from_the_rewound_cursor_and_asks_for_the_count() -> None:
    api = OrderHubApi(page_size=500, overlap=timedelta(minutes=5))
    start = api.start(Cursor(T0, "300000000000007"), Window(until=datetime(2026, 12, 1, tzinfo=UTC)))
    assert start == Cursor("2026-11-18T08:40:03.481+00:00")
    request = PageRequest()
    api.update_request(request, start, Window(until=datetime(2026, 12, 1, tzinfo=UTC)))
    assert request.params == {
        "onlyData": "true",
        "expand": "lines,billToCustomer,shipToCustomer,totals",
        "orderBy": "LastUpdateDate:asc,HeaderId:asc",
        "limit": "500",
        "offset": "0",
        "q": "LastUpdateDate >= '2026-11-18T08:40:03.481+00:00' and LastUpdateDate < '2026-12-01T00:00:00.000+00:00'",
        "totalResults": "true",
    }


def test_erp_next_pages_are_asked_by_key_never_by_offset() -> None:
    request = PageRequest()
    OrderHubApi().update_request(request, Cursor(T0, "300000000000007"), Window())
    assert request.params["q"] == (
        f"(LastUpdateDate > '{T0}' or (LastUpdateDate = '{T0}' and HeaderId > 300000000000007))"
    )
    assert request.params["offset"] == "0" and "totalResults" not in request.params


def test_a_window_start_later_than_the_rewound_cursor_wins() -> None:
    api = OrderHubApi(overlap=timedelta(minutes=5))
    since = datetime(2026, 11, 19, tzinfo=UTC)
    assert api.start(Cursor(T0, "1"), Window(since=since)) == Cursor("2026-11-19T00:00:00.000+00:00")
    assert api.start(None, Window()) == Cursor()


def test_erp_page_keeps_each_items_exact_bytes_and_moves_the_cursor_to_its_last_key() -> None:
    body = (
        b'{"items": [ {"HeaderId": 1, "LastUpdateDate": "%s", "Amount": 1.50} ,\n {"HeaderId": 2, "LastUpdateDate": "%s"}], "hasMore": true, "totalResults": 9}'
        % (
            T0.encode(),
            T0.encode(),
        )
    )
    page = OrderHubApi().update_state(httpx.Response(200, content=body), Cursor(), Window())
    assert [record.body for record in page.records] == [
        b'{"HeaderId": 1, "LastUpdateDate": "%s", "Amount": 1.50}' % T0.encode(),
        b'{"HeaderId": 2, "LastUpdateDate": "%s"}' % T0.encode(),
    ]
    assert page.cursor == Cursor(T0, "2") and page.has_more and page.total == 9


def test_erp_page_out_of_key_order_is_refused() -> None:
    later = "2026-11-18T08:45:04.000+00:00"
    items = [erp_order(2, updated_at=later), erp_order(1, updated_at=T0)]
    with pytest.raises(SourcePageError, match="not after"):
        OrderHubApi().update_state(_page(items), Cursor(), Window())
    with pytest.raises(SourcePageError, match="not after"):  # the source ignored the keyset filter
        OrderHubApi().update_state(
            _page([erp_order(1, updated_at=T0)]), Cursor(T0, "300000000000001"), Window()
        )


def test_erp_items_without_a_key_are_kept_but_cannot_carry_the_cursor() -> None:
    page = OrderHubApi().update_state(
        _page([erp_order(1, updated_at=T0), {"junk": True}]), Cursor(), Window()
    )
    assert len(page.records) == 2 and page.cursor == Cursor(T0, "300000000000001")
    with pytest.raises(SourcePageError, match="hasMore"):
        OrderHubApi().update_state(_page([{"junk": True}], has_more=True), Cursor(), Window())


@pytest.mark.parametrize(
    "body", [b"<html/>", b'{"items": {}}', b'{"hasMore": false}', b'{"items": [], "hasMore": "no"}']
)
def test_erp_unusable_pages_are_refused(body: bytes) -> None:
    with pytest.raises(SourcePageError):
        OrderHubApi().update_state(httpx.Response(200, content=body), Cursor(), Window())


def _tempo_page(items: list[tuple[int, int, str]], token: str | None = None) -> bytes:
    parts = [b'<tpg:OrderPage xmlns:tpg="urn:tempo:orderpage:2" total="7">']
    for number, sequence, at in items:
        parts.append(f'<tpg:Item sequence="{sequence}" action="CHANGE" modifiedAt="{at}">'.encode())
        parts.append(tempo_order(number, modified_at=at))
        parts.append(b"</tpg:Item>")
    if token:
        parts.append(f"<tpg:ContinuationToken>{token}</tpg:ContinuationToken>".encode())
    return b"".join([*parts, b"</tpg:OrderPage>"])


def test_tempo_page_matches_its_schema_and_each_item_becomes_a_message_the_adapter_maps() -> None:
    body = _tempo_page([(1, 2, "2026-11-20T10:13:02"), (2, 1, "2026-11-20T10:13:02")], token="abc")
    xmlschema.XMLSchema(ROOT / "contracts/xsd/tempo-orderpage-2.xsd").validate(etree.fromstring(body))
    page = TempoChangesApi().update_state(httpx.Response(200, content=body), Cursor(), Window())
    assert page.has_more and page.total == 7
    assert page.cursor == Cursor("2026-11-20T10:13:02", "PL/SYN/000000002", "abc")
    adapter = AdapterRegistry.default().create("tempo", MappingCatalog.load(MAPPINGS))
    message_schema = xmlschema.XMLSchema(ROOT / "contracts/xsd/tempo-serviceorder-2.xsd")
    for record, sequence in zip(page.records, (2, 1), strict=True):
        message_schema.validate(etree.fromstring(record.body))
        translation = adapter.translate(record.body)
        assert translation.event.source_version == sequence
        assert translation.event.idempotency_key.startswith("poll:PL/SYN/")


def test_tempo_items_repeated_by_the_next_page_are_no_ops_and_a_real_step_back_is_refused() -> None:
    api = TempoChangesApi()
    at = "2026-11-20T10:13:0{}".format
    first = api.update_state(
        httpx.Response(200, content=_tempo_page([(1, 1, at(1)), (2, 1, at(2)), (3, 1, at(3))], "t1")),
        Cursor(),
        Window(),
    )
    assert first.cursor == Cursor(at(3), "PL/SYN/000000003", "t1")
    # At least once: the next page starts with the last two items again; 3 changed within its second.
    again = _tempo_page([(2, 1, at(2)), (3, 1, at(3)), (3, 2, at(3)), (4, 1, at(4))], "t2")
    second = api.update_state(httpx.Response(200, content=again), first.cursor, Window())
    assert [etree.fromstring(r.body).get("messageId") for r in second.records] == [
        "poll:PL/SYN/000000003:2",
        "poll:PL/SYN/000000004:1",
    ]
    assert second.cursor == Cursor(at(4), "PL/SYN/000000004", "t2")
    backwards = _tempo_page([(9, 1, at(1)), (5, 1, at(5))])  # never read in this run, before the cursor
    with pytest.raises(SourcePageError, match=r"item 0 .* is not after the item before"):
        api.update_state(httpx.Response(200, content=backwards), second.cursor, Window())
    relisted = api.update_state(httpx.Response(200, content=again), Cursor(at(0)), Window())
    assert len(relisted.records) == 4  # a new listing (no token) has read nothing yet


def test_erp_keys_hold_the_content_so_a_change_within_one_second_is_another_event() -> None:
    adapter = ErpAdapter(MappingCatalog.load(MAPPINGS))
    order = erp_order(1, updated_at=T0)
    key = adapter.classify(adapter.decode(json.dumps(order).encode())).idempotency_key
    reordered = json.dumps(dict(reversed(order.items())), indent=2).encode()
    assert adapter.classify(adapter.decode(reordered)).idempotency_key == key  # the same content
    assert key.startswith(f"OPS:SO-SYN-000000001@{T0}#")
    changed = json.dumps({**order, "Comments": "changed within the second"}).encode()
    assert adapter.classify(adapter.decode(changed)).idempotency_key != key


def test_a_cursor_is_ahead_only_past_the_stored_one_erp_ties_as_numbers() -> None:
    api = OrderHubApi()
    stored = Cursor(T0, "9")
    assert api.ahead(Cursor(T0, "10"), stored) and not api.ahead(Cursor(T0, "8"), stored)
    assert not api.ahead(Cursor(T0), stored) and not api.ahead(Cursor(T0, "9"), stored)
    assert not api.ahead(Cursor("2026-11-18T08:40:03.481+00:00", "99"), stored)
    assert api.ahead(Cursor("2026-11-18T08:45:04.000+00:00"), stored) and api.ahead(Cursor(T0), None)


def test_tempo_requests_follow_the_token_then_restart_from_a_time() -> None:
    api = TempoChangesApi(page_size=100, overlap=timedelta(seconds=30))
    request = PageRequest()
    api.update_request(request, Cursor("2026-11-20T10:13:02", "PL/1", "tok"), Window())
    assert request.params == {"pageSize": "100", "continuationToken": "tok"}
    start = api.start(
        Cursor("2026-11-20T10:13:02", "PL/1", "tok"), Window(until=datetime(2026, 11, 21, tzinfo=UTC))
    )
    assert start == Cursor("2026-11-20T10:12:32")
    request = PageRequest()
    api.update_request(request, start, Window(until=datetime(2026, 11, 21, tzinfo=UTC)))
    assert request.params == {
        "pageSize": "100",
        "modifiedSince": "2026-11-20T10:12:32",
        "modifiedBefore": "2026-11-21T01:00:00",
    }


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_the_rate_limit_spaces_request_starts() -> None:
    waits: list[float] = []
    limit = RateLimit(4, sleep=waits.append)
    for _ in range(3):
        limit.wait()
    assert waits[0] == pytest.approx(0.25, abs=0.02) and waits[1] == pytest.approx(0.5, abs=0.02)


def _client(handler: object, **settings: object) -> tuple[SourceClient, list[float]]:
    slept: list[float] = []
    config = SystemPollSettings(
        base_url="http://source.invalid",
        requests_per_second=1000,
        attempts=4,
        backoff_seconds=1,
        max_backoff_seconds=30,
        **settings,  # type: ignore[arg-type]
    )
    transport = httpx.MockTransport(handler)  # type: ignore[arg-type]
    return SourceClient(OrderHubApi(), config, None, transport=transport, sleep=slept.append), slept


def test_the_client_retries_429_and_5xx_with_backoff_and_retry_after() -> None:
    answers = iter(
        [httpx.Response(429, headers={"Retry-After": "12"}), httpx.Response(500), httpx.Response(502)]
    )
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return next(answers, None) or _page([erp_order(1, updated_at=T0)])

    client, slept = _client(handler)
    page = client.page(Cursor(), Window())
    assert len(calls) == 4 and len(page.records) == 1
    retries = [wait for wait in slept if wait > 0.01]  # the rest are the rate limit's (1,000/s)
    assert retries[0] == 12.0  # as asked
    assert 2.0 <= retries[1] <= 3.0 and 4.0 <= retries[2] <= 5.0  # exponential, with jitter


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_the_client_never_retries_other_4xx(status: int) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status)

    client, _ = _client(handler)
    with pytest.raises(SourceRefusedError) as refused:
        client.page(Cursor(), Window())
    assert len(calls) == 1 and refused.value.status == status


def test_a_410_to_a_request_with_a_token_is_an_expired_token_neither_retried_nor_a_refusal() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(410)

    client, _ = _client(handler)
    with pytest.raises(SourceTokenExpiredError, match="continuation token has expired"):
        client.page(Cursor(T0, "1", token="expired"), Window())
    assert len(calls) == 1


def test_the_client_gives_up_after_its_attempts_or_an_overlong_retry_after() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("refused", request=request)

    client, _ = _client(handler)
    with pytest.raises(SourceUnavailableError, match="ConnectError"):
        client.page(Cursor(), Window())
    assert len(calls) == 4
    client, slept = _client(lambda request: httpx.Response(503, headers={"Retry-After": "3600"}))
    with pytest.raises(SourceUnavailableError, match=r"503.*Retry-After 3600 s, beyond max_backoff_seconds"):
        client.page(Cursor(), Window())
    assert [wait for wait in slept if wait > 0.01] == []  # an hour is over max_backoff_seconds: next run


def test_records_reads_a_window_page_after_page() -> None:
    items = [erp_order(n, updated_at=T0) for n in range(1, 6)]

    def handler(request: httpx.Request) -> httpx.Response:
        q = request.url.params["q"]
        found = re.search(r"HeaderId > (\d+)", q)
        after = int(found.group(1)) if found else 0
        rest = [item for item in items if int(str(item["HeaderId"])) > after]
        return _page(rest[:2], has_more=len(rest) > 2)

    client, _ = _client(handler, page_size=2)
    window = Window(datetime(2026, 11, 18, tzinfo=UTC), datetime(2026, 11, 19, tzinfo=UTC))
    numbers = [json.loads(record.body)["OrderNumber"] for record in client.records(window)]
    assert numbers == [f"SYN{n:09d}" for n in range(1, 6)]


def test_settings_take_an_interval_or_a_cron_not_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        SystemPollSettings(base_url="http://x", interval_seconds=5, cron="* * * * *")
    assert SystemPollSettings(base_url="http://x").trigger_description() == "every 60 s"
