"""SIGKILL in the middle of 2,000 concurrent signed webhooks: nothing acknowledged is lost.

The hub runs as a real ``python -m saleshub serve`` process. Every event that got a 202 before the
kill must be recorded (a 2xx means "durably recorded"); after a restart, the processor works off
what was queued, and after a resend of all 2,000 the store holds exactly 2,000 orders, none twice,
each webhook id claimed once and every event processed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.integration.conftest import SECRET, SECRETS, free_port
from tests.support.synthetic import pyxis_event, signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 2000


def start_hub(
    db_url: str, port: int, data_dir: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **SECRETS,
        "SALESHUB_DATABASE__URL": db_url,
        "SALESHUB_WEB__PORT": str(port),
        "SALESHUB_DATABASE__DATA_DIR": str(data_dir),
        "SALESHUB_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "saleshub", "serve"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"saleshub serve exited with {process.returncode}")
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("saleshub serve did not become ready within 60 s")


async def send_all(
    port: int, bodies: list[bytes], kill_after: int | None, process: subprocess.Popen[bytes]
) -> dict[int, int]:
    """Send every body concurrently; SIGKILL the server after ``kill_after`` 202s. Status by index."""
    statuses: dict[int, int] = {}
    accepted = 0
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits) as client:
        semaphore = asyncio.Semaphore(64)

        async def one(index: int) -> None:
            nonlocal accepted
            body = bodies[index]
            # Without a kill, a request that timed out on a busy machine is sent again, as a
            # sender would; with one, a failed request stays unanswered (it was not acknowledged).
            attempts = 1 if kill_after is not None else 3
            async with semaphore:
                for attempt in range(attempts):
                    try:
                        response = await client.post(
                            "/webhooks/pyxis",
                            content=body,
                            headers=signed_headers(SECRET, f"crash-{index}", body),
                        )
                        break
                    except httpx.TransportError:
                        if attempt == attempts - 1:
                            return
            statuses[index] = response.status_code
            if response.status_code == 202:
                accepted += 1
                if kill_after is not None and accepted == kill_after:
                    process.send_signal(signal.SIGKILL)

        await asyncio.gather(*(one(i) for i in range(len(bodies))))
    return statuses


def test_sigkill_mid_burst_loses_nothing_acknowledged(db_url: str, tmp_path: Path) -> None:
    bodies = [pyxis_event(100_000 + i) for i in range(TOTAL)]
    port = free_port()
    hub = start_hub(db_url, port, tmp_path)
    try:
        first = asyncio.run(send_all(port, bodies, kill_after=TOTAL // 3, process=hub))
    finally:
        hub.kill()
        hub.wait()
    acknowledged = {i for i, status in first.items() if status in (200, 202)}
    assert TOTAL // 3 <= len(acknowledged) < TOTAL, "the kill should land mid-burst"

    engine = create_engine(db_url)
    with engine.connect() as conn:
        recorded = set(
            conn.execute(text("SELECT idempotency_key FROM sales_system_integration_events")).scalars()
        )
    assert {f"crash-{i}" for i in acknowledged} <= recorded

    hub = start_hub(db_url, port, tmp_path)
    try:
        second = asyncio.run(send_all(port, bodies, kill_after=None, process=hub))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM event_queue")).scalar_one() == 0:
                    break
            time.sleep(0.2)
    finally:
        hub.terminate()
        hub.wait(timeout=30)
    assert set(second.values()) <= {200, 202}
    assert len(second) == TOTAL
    assert all(second[i] == 200 for i in acknowledged), "an acknowledged webhook id must be a repeat"

    with engine.connect() as conn:
        orders = conn.execute(
            text("SELECT count(*), count(DISTINCT external_order_id) FROM service_orders")
        ).one()
        keys = conn.execute(text("SELECT count(*) FROM integration_event_keys")).scalar_one()
        events = conn.execute(text("SELECT count(*) FROM sales_system_integration_events")).scalar_one()
        statuses = set(
            conn.execute(text("SELECT DISTINCT status FROM sales_system_integration_events")).scalars()
        )
    engine.dispose()
    assert tuple(orders) == (TOTAL, TOTAL)
    assert keys == TOTAL and events == TOTAL
    assert statuses == {"mapped"}
