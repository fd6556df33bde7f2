"""Polling never loses a version a source shows, against the loopback source API and a real PostgreSQL.

Sources behave in ways that a careful keyset reader still has to survive: an ERP order changes twice
within one second (Oracle keeps ``LastUpdateDate`` to the second), Tempo's token paging repeats the
last items of a page at the start of the next, a continuation token expires mid-listing (410), runs
fail inside the overlap, a process dies mid-run, and a source asks to be left alone for an hour.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from saleshub.cli import app
from saleshub.receive.polling import build_poller
from saleshub.runtime import HubRuntime
from saleshub.store import queries
from tests.integration.test_polling import (
    FAST,
    erp_hub,
    hub_orders,
    poll_events,
    polling_hub,
    source,
)
from tests.support.source_server import Fault, SourceServer, TempoData, erp_time
from tests.support.synthetic import erp_order

pytestmark = pytest.mark.integration

__all__ = ["erp_hub", "source"]  # the fixtures, used by name


def hub_notes(hub: HubRuntime, order: str, system: str = "erp") -> str | None:
    """The canonical ``notes`` of one order, once everything recorded is processed."""
    hub.processor().drain()
    with hub.database.engine.connect() as conn:
        found = queries.find_order(conn, system=system, external_id=order)  # notes are sealed at rest
    assert found is not None
    notes: str | None = found.content.get("notes")
    return notes


def test_an_erp_order_changed_twice_in_one_second_ends_with_the_later_content(
    erp_hub: HubRuntime, source: SourceServer
) -> None:
    second = erp_time(datetime.now(UTC).replace(microsecond=0))  # Oracle's LastUpdateDate: whole seconds
    source.erp.add(range(1, 21))
    source.erp.put(erp_order(7, revision=2, updated_at=second, notes="first change"))
    assert build_poller(erp_hub, "erp").run().outcome == "completed"
    assert hub_notes(erp_hub, "SYN000000007") == "first change"

    # The same order, the same second, the same revision: only its content tells the change apart.
    source.erp.put(erp_order(7, revision=2, updated_at=second, notes="second change"))
    result = build_poller(erp_hub, "erp").run()
    assert result.outcome == "completed", result.error
    assert result.recorded == 1
    assert hub_notes(erp_hub, "SYN000000007") == "second change"
    assert build_poller(erp_hub, "erp").run().recorded == 0  # the same content again: a no-op


def tempo_times(count: int) -> list[str]:
    """``count`` change times a second apart, an hour ago, in Tempo's local time."""
    start = datetime.now(ZoneInfo("Europe/Warsaw")).replace(tzinfo=None, microsecond=0) - timedelta(hours=1)
    return [(start + timedelta(seconds=n)).isoformat() for n in range(count)]


def test_a_tempo_feed_repeating_the_last_two_items_of_every_page_is_read_in_one_run(
    db_url: str,
) -> None:
    with SourceServer(tempo=TempoData(repeat=2)) as server:
        for number, moment in enumerate(tempo_times(180), start=1):
            server.tempo.add([number], modified_at=moment)
        hub = polling_hub(db_url, server)
        try:
            result = build_poller(hub, "tempo").run()
            assert result.outcome == "completed", result.error
            assert result.recorded == 180 and result.pages == 4  # 50, 48, 48 and 36 new items
            assert hub_orders(hub, "tempo") == server.tempo.expected()
            assert poll_events(hub, "tempo") == {"mapped": 180}
        finally:
            hub.close()


def test_an_expired_continuation_token_lists_again_from_the_time_cursor(db_url: str) -> None:
    with SourceServer() as server:
        for number, moment in enumerate(tempo_times(180), start=1):
            server.tempo.add([number], modified_at=moment)
        updates = {1: [3, 60], 2: [100, 170]}  # moved to the end of the listing while it is read

        def before_page(page: int) -> None:
            for number in updates.get(page, []):
                server.tempo.update(number)
            if page == 2:
                server.faults.append(Fault(status=410))  # the token of page 2 is gone when asked

        server.before_page = before_page
        hub = polling_hub(db_url, server)
        try:
            result = build_poller(hub, "tempo").run()
            assert result.outcome == "completed", result.error
            assert server.counters.faults == 1
            assert hub_orders(hub, "tempo") == server.tempo.expected()
            assert ("PL/SYN/000000170", 2) in server.tempo.expected()
            with hub.database.engine.connect() as conn:
                state = conn.execute(text("SELECT failures, paused_at FROM poller_state")).all()
            assert all(row.failures == 0 and row.paused_at is None for row in state)
        finally:
            hub.close()


def test_a_410_on_a_request_without_a_token_still_pauses(erp_hub: HubRuntime, source: SourceServer) -> None:
    source.erp.add(range(1, 11))
    source.faults.append(Fault(status=410))
    result = build_poller(erp_hub, "erp").run()
    assert result.outcome == "failed" and result.paused and "410" in (result.error or "")


def stored_cursor(hub: HubRuntime) -> tuple[str | None, str | None]:
    with hub.database.engine.connect() as conn:
        row = conn.execute(text("SELECT updated_at, tie FROM poll_cursors WHERE source_system = 'erp'")).one()
    return row.updated_at, row.tie


def test_failed_runs_inside_the_overlap_never_move_the_cursor_back(db_url: str, source: SourceServer) -> None:
    source.erp.add(range(1, 201))
    hub = polling_hub(db_url, source, attempts=2, pause_after_failures=10)
    try:
        assert build_poller(hub, "erp").run().outcome == "completed"
        cursor = stored_cursor(hub)
        assert cursor[1] == str(max(source.erp.orders))
        # From now on every page is followed by a failing request: each run records its first page
        # (inside the overlap, before the cursor) and fails.
        source.before_page = lambda _: source.faults.extend([Fault(status=502), Fault(status=502)])
        for _ in range(3):
            failed = build_poller(hub, "erp").run()
            assert failed.outcome == "failed" and failed.pages == 1
            assert stored_cursor(hub) == cursor
        source.before_page = None
        source.erp.update(5)
        assert build_poller(hub, "erp").run().outcome == "completed"
        assert stored_cursor(hub)[1] == str(300_000_000_000_005)
        assert hub_orders(hub) == source.erp.expected()
    finally:
        hub.close()


def test_poll_status_shows_a_retry_after_beyond_the_longest_backoff(
    erp_hub: HubRuntime, source: SourceServer, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source.erp.add(range(1, 11))
    source.faults.append(Fault(status=503, retry_after="3600"))
    result = build_poller(erp_hub, "erp").run()
    assert result.outcome == "failed" and not result.paused
    assert "Retry-After 3600 s" in (result.error or "")
    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    monkeypatch.setenv("SALESHUB_POLLERS__SYSTEMS", json.dumps({"erp": {"base_url": source.url}}))
    monkeypatch.setenv("COLUMNS", "400")
    shown = CliRunner().invoke(app, ["poll", "status"])
    assert shown.exit_code == 0, shown.output
    assert "Retry-After 3600 s" in shown.output and "max_backoff_seconds" in shown.output
    assert FAST["max_backoff_seconds"] == 3.0  # the limit the message names
