"""Hostile bodies against the live server: no 5xx, everything recorded once.

Structure-aware mutations of the golden samples (``tests.support.mutations``: retyped and deleted
fields, huge and tiny numbers, exponents, dates at the edges, control characters, NUL, lone
surrogates, deep nesting, duplicate keys, grown lists), signed and posted 12 at a time to the real
uvicorn server with a processor running. Seeded (``derandomize``), so a failure repeats.

For every answer: no 5xx; a 2xx, 415 or 422 names an event that is recorded
exactly once with the exact body. Afterwards the processor has finished every event (none left
``accepted``), none ``failed`` (a hostile body is quarantined, never a crash of the hub), and the
server's memory grew by a bounded amount. How much CPU a body may cost is the property tests'
check (``tests/property``), where it is measured per call: a wall-clock bound on 12 concurrent
answers would measure the machine's load, not the body.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from saleshub.runtime import HubRuntime
from saleshub.store import queries
from tests.integration.conftest import SECRET, LiveServer, wait_until
from tests.support.mutations import mutated_json, mutated_xml
from tests.support.synthetic import signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCHES = 150  # of 12 bodies: 1,800 bodies per system
CONCURRENCY = 12
RECORDED = (200, 202, 415, 422)
SYSTEMS = {
    "pyxis": ("application/json", mutated_json("pyxis")),
    "erp": ("application/json", mutated_json("erp")),
    "tempo": ("application/xml", mutated_xml()),
}


@pytest.fixture
def live(hub: HubRuntime) -> Iterator[str]:
    with LiveServer(hub) as server:
        yield server.url


async def _post_all(
    url: str, system: str, content_type: str, bodies: list[bytes]
) -> list[tuple[str, bytes, int, dict[str, object]]]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def one(body: bytes) -> tuple[str, bytes, int, dict[str, object]]:
            webhook_id = f"fuzz-{uuid.uuid4().hex}"
            headers = signed_headers(SECRET, webhook_id, body, content_type=content_type)
            response = await client.post(f"/webhooks/{system}", content=body, headers=headers)
            answer = response.json() if response.headers.get("content-type", "").endswith("json") else {}
            return webhook_id, body, response.status_code, answer

        return list(await asyncio.gather(*(one(body) for body in bodies)))


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_hostile_bodies_never_get_a_5xx_and_are_recorded_exactly_once(
    system: str, live: str, hub: HubRuntime
) -> None:
    content_type, bodies_strategy = SYSTEMS[system]
    answers: list[tuple[str, bytes, int, dict[str, object]]] = []
    memory_before = psutil.Process().memory_info().rss

    @settings(
        max_examples=BATCHES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(bodies_strategy, min_size=CONCURRENCY, max_size=CONCURRENCY))
    def batch(bodies: list[bytes]) -> None:
        for answer in asyncio.run(_post_all(live, system, content_type, bodies)):
            _, body, status, payload = answer
            assert status < 500, f"{status} for {body[:300]!r}: {payload}"
            answers.append(answer)

    batch()
    recorded = [a for a in answers if a[2] in RECORDED]
    assert len(answers) >= BATCHES * CONCURRENCY
    assert len(recorded) > len(answers) // 2, "most mutated bodies still pass the size and signature gates"

    with hub.database.engine.connect() as conn:
        stored = {}
        for row in conn.execute(
            text(
                "SELECT idempotency_key, min(event_id::text) AS event_id, count(*) AS n "
                "FROM sales_system_integration_events WHERE idempotency_key LIKE 'fuzz-%' "
                "GROUP BY idempotency_key"
            )
        ):
            event = queries.event(conn, uuid.UUID(row.event_id))  # the body opened by the store
            assert event is not None
            stored[row.idempotency_key] = (row.event_id, event.raw_body, row.n)
    for webhook_id, body, status, payload in recorded:
        assert webhook_id in stored, f"a {status} answer for an event that was not recorded: {payload}"
        event_id, raw_body, count = stored[webhook_id]
        assert count == 1 and raw_body == body and payload.get("event_id") == event_id
    assert len(stored) == len(recorded), "only what the contract says is recorded is recorded"

    def processed() -> bool:
        with hub.database.engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM event_queue")).scalar_one() == 0

    wait_until(processed, 600, "the processor finished every recorded event")
    with hub.database.engine.connect() as conn:
        statuses = dict(
            conn.execute(
                text("SELECT status, count(*) FROM sales_system_integration_events GROUP BY status")
            ).all()
        )
    assert "accepted" not in statuses and "failed" not in statuses, statuses
    grown = (psutil.Process().memory_info().rss - memory_before) / 2**20
    assert grown < 400, f"the server grew by {grown:.0f} MiB"
