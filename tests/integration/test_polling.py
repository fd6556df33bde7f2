"""Pollers against a real loopback source API (tests/support/source_server.py) and a real PostgreSQL.

The source's data set changes while the poller runs (updates that move rows across page boundaries,
a thousand rows on one change time, late commits, a clock behind the hub's), the source misbehaves
(429 with Retry-After, 500s, answers slower than the timeout, malformed records, 401), and the
poller is SIGKILLed between two pages. In every case the hub must end with exactly the source's set
of (order, version): the processor is drained and ``service_orders`` compared as a set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from adapters.source import Window
from saleshub.platform.secrets import EnvSecretStore
from saleshub.receive.polling import build_poller, start_pollers
from saleshub.runtime import HubRuntime
from saleshub.services import Services
from saleshub.store import polling as store
from tests.conftest import ROOT
from tests.integration.conftest import SECRETS, open_hub, wait_until
from tests.support.source_server import ERP_PATH, PASSWORD, USERNAME, ErpData, Fault, SourceServer
from tests.support.synthetic import erp_order

pytestmark = pytest.mark.integration

SOURCE_SECRETS = {
    "SALESHUB_SECRET_SOURCE_ERP_USERNAME": USERNAME,
    "SALESHUB_SECRET_SOURCE_ERP_PASSWORD": PASSWORD,
}
FAST = {
    "page_size": 50,
    "timeout_seconds": 1.0,
    "backoff_seconds": 0.05,
    "max_backoff_seconds": 3.0,
    "requests_per_second": 1000,
    "attempts": 4,
}


def polling_hub(db_url: str, server: SourceServer, **erp: Any) -> HubRuntime:
    systems = {
        "erp": {"base_url": server.url, **FAST, **erp},
        "tempo": {"base_url": server.url, **FAST, "auth": "none"},
    }
    hub = open_hub(db_url, pollers={"systems": systems})
    hub.secrets = EnvSecretStore({**SECRETS, **SOURCE_SECRETS})
    return hub


@pytest.fixture
def source() -> Iterator[SourceServer]:
    with SourceServer() as server:
        yield server


@pytest.fixture
def erp_hub(db_url: str, source: SourceServer) -> Iterator[HubRuntime]:
    hub = polling_hub(db_url, source)
    yield hub
    hub.close()


def hub_orders(hub: HubRuntime, system: str = "erp") -> set[tuple[str, int]]:
    """(order, version) of every order the hub holds for ``system``, once everything is processed."""
    hub.processor().drain()
    with hub.database.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT external_order_id, source_version FROM service_orders WHERE source_system = :s"),
            {"s": system},
        )
        return {(row[0], row[1]) for row in rows}


def poll_events(hub: HubRuntime, system: str = "erp") -> dict[str, int]:
    with hub.database.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT status, count(*) FROM sales_system_integration_events "
                "WHERE source_system = :s AND transport = 'poll' GROUP BY status"
            ),
            {"s": system},
        )
        return {row[0]: row[1] for row in rows}


def test_a_run_reads_every_order_and_a_second_run_records_nothing(
    erp_hub: HubRuntime, source: SourceServer
) -> None:
    source.erp.add(range(1, 231))
    first = build_poller(erp_hub, "erp").run()
    assert first.outcome == "completed", first.error
    assert (first.pages, first.orders, first.recorded) == (5, 230, 230)
    assert hub_orders(erp_hub) == source.erp.expected()

    again = build_poller(erp_hub, "erp").run()  # the overlap reads the last 5 minutes again: no-ops
    assert again.outcome == "completed" and again.orders > 0 and again.recorded == 0
    assert sum(poll_events(erp_hub).values()) == 230
    with erp_hub.database.engine.connect() as conn:
        runs = store.last_runs(conn, "erp", 5)
        cursor = store.load_cursor(conn, "erp", "incremental")
    assert [run.outcome for run in runs] == ["completed", "completed"]
    assert runs[1].pages == 5 and runs[1].orders == 230 and runs[1].finished_at is not None
    assert cursor is not None and cursor.caught_up_at is not None
    assert cursor.tie == str(max(source.erp.orders))


def test_429_and_5xx_are_retried_honouring_retry_after(db_url: str, source: SourceServer) -> None:
    hub = polling_hub(db_url, source, max_backoff_seconds=10)
    try:
        source.erp.add(range(1, 121))
        in_five_seconds = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
        source.faults.extend(
            [
                Fault(status=429, retry_after="1"),
                Fault(status=500),
                Fault(status=503, retry_after=in_five_seconds),
            ]
        )
        started = time.monotonic()
        result = build_poller(hub, "erp").run()
        assert result.outcome == "completed", result.error
        assert time.monotonic() - started >= 3.5  # waited as asked (1 s, then until the HTTP date)
        assert source.counters.faults == 3
        assert hub_orders(hub) == source.erp.expected()
    finally:
        hub.close()


def test_a_retry_after_longer_than_the_longest_backoff_ends_the_run(
    erp_hub: HubRuntime, source: SourceServer
) -> None:
    source.erp.add(range(1, 11))
    source.faults.append(Fault(status=503, retry_after="3600"))
    result = build_poller(erp_hub, "erp").run()
    assert result.outcome == "failed" and "503" in (result.error or "") and not result.paused
    assert source.counters.requests == 1
    assert build_poller(erp_hub, "erp").run().outcome == "completed"  # the next run


def test_answers_slower_than_the_timeout_are_retried(erp_hub: HubRuntime, source: SourceServer) -> None:
    source.erp.add(range(1, 101))
    source.faults.extend([Fault(delay=2.5), Fault(delay=2.5)])  # timeout 1 s: two tries time out
    result = build_poller(erp_hub, "erp").run()
    assert result.outcome == "completed", result.error
    assert hub_orders(erp_hub) == source.erp.expected()


def test_other_4xx_is_not_retried_and_pauses_the_poller(db_url: str, source: SourceServer) -> None:
    source.erp.add(range(1, 11))
    hub = polling_hub(db_url, source)
    hub.secrets = EnvSecretStore({**SOURCE_SECRETS, "SALESHUB_SECRET_SOURCE_ERP_PASSWORD": "wrong"})
    try:
        result = build_poller(hub, "erp").run()
        assert result.outcome == "failed" and result.paused
        assert "401" in (result.error or "") and "source/erp" in (result.error or "")
        assert "wrong" not in (result.error or "")
        assert source.counters.requests == 1  # never retried
        assert build_poller(hub, "erp").run().outcome == "paused"  # scheduled runs wait for an operator
        assert source.counters.requests == 1
        with hub.database.engine.connect() as conn:
            state = store.poller_states(conn)["erp"]
        assert state.paused_at is not None and "401" in (state.paused_reason or "")
    finally:
        hub.close()


def test_repeated_failures_pause_the_poller_instead_of_hammering(db_url: str, source: SourceServer) -> None:
    source.erp.add(range(1, 11))
    hub = polling_hub(db_url, source, attempts=2, pause_after_failures=3)
    try:
        source.faults.extend(Fault(status=502) for _ in range(20))
        outcomes = [build_poller(hub, "erp").run() for _ in range(4)]
        assert [r.outcome for r in outcomes] == ["failed", "failed", "failed", "paused"]
        assert outcomes[2].paused and "3 failed runs in a row" in _state(hub).paused_reason  # type: ignore[operator]
        assert source.counters.requests == 6  # 3 runs x 2 tries, then nothing
        source.faults.clear()
        forced = build_poller(hub, "erp").run(force=True)  # an operator's run lifts the pause
        assert forced.outcome == "completed"
        assert _state(hub).paused_at is None and _state(hub).failures == 0
        assert hub_orders(hub) == source.erp.expected()
    finally:
        hub.close()


def _state(hub: HubRuntime) -> store.PollerState:
    with hub.database.engine.connect() as conn:
        return store.poller_states(conn)["erp"]


def test_malformed_records_are_quarantined_and_the_rest_recorded(
    erp_hub: HubRuntime, source: SourceServer
) -> None:
    source.erp.add(range(1, 81))
    broken = (
        {"OrderNumber": None, "OrderKey": None},  # nothing identifies the order
        {"SourceTransactionRevisionNumber": "x"},  # a version that is not a number
    )
    for number, fields in zip((900, 901), broken, strict=True):
        source.erp.put({**erp_order(number, updated_at=source.erp.now()), **fields})
    result = build_poller(erp_hub, "erp").run()
    assert result.outcome == "completed", result.error
    assert result.errors == 2 and result.recorded == 82
    assert poll_events(erp_hub) == {"accepted": 80, "quarantined": 2}
    assert hub_orders(erp_hub) == source.erp.expected()
    assert poll_events(erp_hub) == {"mapped": 80, "quarantined": 2}
    assert build_poller(erp_hub, "erp").run().recorded == 0  # read again: the same bodies, no-ops


def _mutate_while_paging(data: ErpData, numbers: list[int]) -> None:
    """Rows read on earlier pages and rows not yet read get new revisions (they move to the end)."""
    for number in numbers:
        data.update(number)


def test_rows_updated_while_paging_are_not_skipped(erp_hub: HubRuntime, source: SourceServer) -> None:
    source.erp.add(range(1, 501))
    changes = {2: [3, 120, 260], 4: [7, 180, 190, 400], 6: [1, 2, 499, 500], 9: [150, 151, 152]}
    source.before_page = lambda page: _mutate_while_paging(source.erp, changes.get(page, []))
    result = build_poller(erp_hub, "erp").run()
    assert result.outcome == "completed", result.error
    assert hub_orders(erp_hub) == source.erp.expected()
    assert {("SYN000000120", 2), ("SYN000000001", 2), ("SYN000000152", 2)} <= source.erp.expected()


def test_offset_paging_over_the_same_changes_would_skip_rows(source: SourceServer) -> None:
    """The scenario above is a real trap: a reader trusting offsets misses rows (proves the test bites)."""
    source.erp.add(range(1, 501))
    changes = {2: [3, 120, 260], 4: [7, 180, 190, 400]}
    source.before_page = lambda page: _mutate_while_paging(source.erp, changes.get(page, []))
    seen: set[str] = set()
    auth = (USERNAME, PASSWORD)
    with httpx.Client(base_url=source.url, auth=auth) as client:
        offset = 0
        while True:
            params = {
                "onlyData": "true",
                "orderBy": "LastUpdateDate:asc,HeaderId:asc",
                "limit": "50",
                "offset": str(offset),
            }
            page = client.get(ERP_PATH, params=params).json()
            seen |= {item["OrderNumber"] for item in page["items"]}
            if not page["hasMore"]:
                break
            offset += 50
    assert len(seen) < 500


def test_a_thousand_rows_on_one_change_time_across_pages(erp_hub: HubRuntime, source: SourceServer) -> None:
    moment = source.erp.now()
    source.erp.add(range(1, 1001), updated_at=moment)
    result = build_poller(erp_hub, "erp").run()
    assert result.outcome == "completed", result.error
    assert result.pages == 20 and result.recorded == 1000
    assert hub_orders(erp_hub) == source.erp.expected()


def test_a_source_clock_minutes_behind_the_hub(db_url: str) -> None:
    with SourceServer(erp=ErpData(clock_skew=-timedelta(minutes=7))) as source:
        hub = polling_hub(db_url, source, overlap_seconds=1)
        try:
            source.erp.add(range(1, 101))
            assert build_poller(hub, "erp").run().outcome == "completed"
            for number in range(5, 60, 6):
                source.erp.update(number)
            source.erp.add(range(101, 121))
            assert build_poller(hub, "erp").run().outcome == "completed"
            assert hub_orders(hub) == source.erp.expected()
        finally:
            hub.close()


def test_a_late_commit_inside_the_overlap_is_caught(erp_hub: HubRuntime, source: SourceServer) -> None:
    source.erp.add(range(1, 61))
    assert build_poller(erp_hub, "erp").run().outcome == "completed"
    # A transaction that began a minute ago commits now: its rows carry a time before the cursor.
    a_minute_ago = (datetime.fromisoformat(source.erp.now()) - timedelta(minutes=1)).isoformat(
        timespec="milliseconds"
    )
    source.erp.add([61, 62], updated_at=a_minute_ago)
    source.erp.update(10, updated_at=a_minute_ago)
    assert build_poller(erp_hub, "erp").run().outcome == "completed"
    assert hub_orders(erp_hub) == source.erp.expected()


def test_sigkill_between_two_pages_resumes_without_a_gap(
    db_url: str, source: SourceServer, tmp_path: Path
) -> None:
    source.erp.add(range(1, 601))
    source.page_delay = 0.3
    env = {
        **os.environ,
        **SOURCE_SECRETS,
        "SALESHUB_DATABASE__URL": db_url,
        "SALESHUB_DATABASE__DATA_DIR": str(tmp_path / "data"),
        "SALESHUB_LOG_LEVEL": "WARNING",
        "SALESHUB_POLLERS__SYSTEMS": json.dumps({"erp": {"base_url": source.url, **FAST}}),
    }
    hub = polling_hub(db_url, source)
    try:
        with (tmp_path / "poll.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "saleshub", "poll", "run", "erp"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
            )

        def committed_pages() -> int:
            with hub.database.engine.connect() as conn:
                cursor = store.load_cursor(conn, "erp", "incremental")
            return cursor.pages if cursor else 0

        try:
            wait_until(lambda: committed_pages() >= 3, 60, "the poller committed three pages")
            pages_before = source.counters.pages
            wait_until(
                lambda: source.counters.pages > pages_before, 120, "the poller asked for the next page"
            )
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        pages = committed_pages()
        assert 3 <= pages < 12
        assert sum(poll_events(hub).values()) == pages * 50  # exactly the committed pages, nothing half
        with hub.database.engine.connect() as conn:  # the killed session's lock goes within moments
            wait_until(lambda: not store.is_locked(conn, "erp", "incremental"), 30, "the lock was freed")
        assert "interrupted (its process died" in _poll_status(env)
        source.page_delay = 0
        for number in (2, 77, 420):
            source.erp.update(number)
        resumed = None
        for _ in range(50):  # the killed session's lock goes with its connection, within moments
            resumed = build_poller(hub, "erp").run()
            if resumed.outcome != "skipped":
                break
            time.sleep(0.2)
        assert resumed is not None and resumed.outcome == "completed", resumed
        assert hub_orders(hub) == source.erp.expected()
        # Every version read once: the three updated orders' first versions only where read before.
        read_before = sum(1 for number in (2, 77, 420) if number <= pages * 50)
        assert poll_events(hub) == {"mapped": 600 + read_before}
        # The killed run was left open; the run that found its lock free closed it as interrupted.
        with hub.database.engine.connect() as conn:
            runs = store.last_runs(conn, "erp", 5)
        assert [run.outcome for run in runs] == ["completed", "interrupted"]
        assert runs[1].pages == pages and runs[1].finished_at is not None
        assert "1 of the 2 last runs interrupted" in _poll_status(env)
    finally:
        hub.close()


def _poll_status(env: dict[str, str]) -> str:
    status = subprocess.run(
        [sys.executable, "-m", "saleshub", "poll", "status"],
        cwd=ROOT,
        env={**env, "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    return status.stdout


def test_two_pollers_never_read_one_feed_at_once(erp_hub: HubRuntime, source: SourceServer) -> None:
    source.erp.add(range(1, 11))
    with erp_hub.database.engine.connect() as other_process:
        assert store.try_lock(other_process, "erp", "incremental")
        skipped = build_poller(erp_hub, "erp").run()
        assert skipped.outcome == "skipped" and "another process" in (skipped.error or "")
        assert source.counters.requests == 0
        store.unlock(other_process, "erp", "incremental")
    assert build_poller(erp_hub, "erp").run().outcome == "completed"


def test_tempo_pages_with_a_continuation_token(db_url: str, source: SourceServer) -> None:
    moment = source.tempo.now()
    source.tempo.add(range(1, 181), modified_at=moment)  # all on one second, across four pages
    source.before_page = lambda page: [
        source.tempo.update(n) for n in {2: [3, 90], 3: [1, 170]}.get(page, [])
    ]
    hub = polling_hub(db_url, source)
    try:
        first = build_poller(hub, "tempo").run()
        assert first.outcome == "completed", first.error
        # Tempo stamps changes to the second: an order already read that changes within the second of
        # the listing's position sorts before it, and only the next run (from the cursor minus the
        # overlap) can see it. Nothing is lost: the next scheduled run reads it.
        second = build_poller(hub, "tempo").run()
        assert second.outcome == "completed", second.error
        assert hub_orders(hub, "tempo") == source.tempo.expected()
        assert poll_events(hub, "tempo") == {"mapped": first.recorded + second.recorded}
        assert build_poller(hub, "tempo").run().recorded == 0
    finally:
        hub.close()


def test_backfill_reads_its_window_resumably_and_leaves_the_incremental_cursor(
    erp_hub: HubRuntime, source: SourceServer
) -> None:
    base = datetime(2026, 10, 1, tzinfo=UTC)
    for number in range(1, 401):  # one order per hour, 1 October onwards
        source.erp.add(
            [number], updated_at=(base + timedelta(hours=number)).isoformat(timespec="milliseconds")
        )
    window = Window(base + timedelta(hours=100), base + timedelta(hours=300))
    stop = threading.Event()
    poller = build_poller(erp_hub, "erp")
    first = poller.run(
        stream="backfill", window=window, stop=stop, on_page=lambda p: p.pages == 2 and stop.set()
    )
    assert first.outcome == "stopped" and first.pages == 2
    progress: list[int | None] = []
    second = poller.run(stream="backfill", window=window, on_page=lambda p: progress.append(p.remaining))
    assert second.outcome == "completed" and second.recorded == 200 - 100
    assert progress[0] == 51  # the source's count (the overlap reads the last row again)
    expected = {(f"SYN{n:09d}", 1) for n in range(100, 300)}
    assert hub_orders(erp_hub) == expected
    with erp_hub.database.engine.connect() as conn:
        assert store.load_cursor(conn, "erp", "incremental") is None
        backfill = store.load_cursor(conn, "erp", "backfill")
    assert (
        backfill is not None and backfill.finished_at is not None and backfill.records == 201
    )  # one read twice


def test_the_backfill_command_shows_progress(db_url: str, source: SourceServer, tmp_path: Path) -> None:
    base = datetime(2026, 10, 1, tzinfo=UTC)
    for number in range(1, 121):
        source.erp.add(
            [number], updated_at=(base + timedelta(minutes=number)).isoformat(timespec="milliseconds")
        )
    env = {
        **os.environ,
        **SOURCE_SECRETS,
        "SALESHUB_DATABASE__URL": db_url,
        "SALESHUB_DATABASE__DATA_DIR": str(tmp_path / "data"),
        "SALESHUB_LOG_LEVEL": "WARNING",
        "SALESHUB_POLLERS__SYSTEMS": json.dumps({"erp": {"base_url": source.url, **FAST}}),
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "saleshub",
            "poll",
            "backfill",
            "erp",
            "--since",
            "2026-10-01",
            "--until",
            "2026-10-02",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "120/120" in done.stdout and "orders/s" in done.stdout and "3 pages" in done.stdout
    status = subprocess.run(
        [sys.executable, "-m", "saleshub", "poll", "status"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    assert "erp" in status.stdout and "never caught up" in status.stdout and "backfill" not in status.stdout


def test_serve_runs_the_pollers_on_their_schedule(db_url: str, source: SourceServer) -> None:
    source.erp.add(range(1, 61))
    hub = polling_hub(db_url, source, interval_seconds=0.5)
    services = Services.start(hub, processors=1, pollers=True)
    try:
        wait_until(lambda: hub_orders(hub) == source.erp.expected(), 120, "the first scheduled run")
        source.erp.update(30)
        source.erp.add([61])
        wait_until(lambda: hub_orders(hub) == source.erp.expected(), 120, "a later scheduled run")
        with hub.database.engine.connect() as conn:
            state = store.poller_states(conn)["erp"]
        assert state.next_run_at is not None
    finally:
        services.stop()
        hub.close()


def test_start_pollers_refuses_an_unknown_system(db_url: str, source: SourceServer) -> None:
    hub = open_hub(db_url, pollers={"systems": {"nosuch": {"base_url": source.url}}})
    try:
        with pytest.raises(Exception, match="no adapter for system 'nosuch'"):
            start_pollers(hub)
    finally:
        hub.close()
