"""The outbox's SQL in ``saleshub.store.outbox``: eligible events per key, lane leases, broker state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine

from canonical.events import EventKind
from saleshub.publish.outbox import Outbox
from saleshub.runtime import HubRuntime
from saleshub.store.outbox import (
    Delivered,
    backlog,
    broker_state,
    claim_round,
    finish_round,
    record_broker_state,
    write_outbox_rows,
)
from tests.integration.conftest import wait_until
from tests.support.synthetic import pyxis_event

pytestmark = pytest.mark.integration


def order_rows(hub: HubRuntime, orders: int, versions: int) -> list[dict[str, object]]:
    translated = hub.adapters["pyxis"].translate(pyxis_event(0)).mapped
    outbox = Outbox(hub.schemas)
    rows = []
    for version in range(1, versions + 1):
        for number in range(orders):
            order = translated.order.model_copy(update={"external_order_id": f"PX-STORE-{number}"})
            kind = EventKind.ORDER_RECEIVED if version == 1 else EventKind.ORDER_UPDATED
            rows.append(
                outbox.order_row(
                    kind,
                    event_id=uuid.uuid4(),
                    occurred_at=datetime.now(UTC),
                    order=order,
                    version_no=version,
                    mapping="pyxis/order@test",
                )
            )
    return rows


def test_a_round_gets_only_each_keys_oldest_unpublished_event(hub: HubRuntime) -> None:
    engine = hub.database.engine
    with engine.begin() as conn:
        write_outbox_rows(conn, order_rows(hub, orders=30, versions=3))
    relay = uuid.uuid4()
    for expected_kind in ("order_received", "order_updated", "order_updated"):
        claim = claim_round(engine, relay, lanes=64, shift=0, lease_seconds=60, limit=1000)
        assert len(claim.rows) == 30, "one event per key"
        assert len({row.message_key for row in claim.rows}) == 30
        assert {row.kind for row in claim.rows} == {expected_kind}
        # Nothing else is eligible while these are leased, even for another relay.
        assert claim_round(engine, uuid.uuid4(), lanes=64, shift=0, lease_seconds=60, limit=1000).rows == []
        published = [Delivered(row.outbox_id, 0, n) for n, row in enumerate(claim.rows)]
        finish_round(engine, relay, claim.lanes, published=published, failed=[], error="")
    assert claim_round(engine, relay, lanes=64, shift=0, lease_seconds=60, limit=1000).rows == []
    with engine.connect() as conn:
        assert backlog(conn).pending == 0


def test_a_failed_event_holds_back_its_own_key_only(hub: HubRuntime) -> None:
    engine = hub.database.engine
    with engine.begin() as conn:
        write_outbox_rows(conn, order_rows(hub, orders=2, versions=2))
    relay = uuid.uuid4()
    first = claim_round(engine, relay, lanes=64, shift=0, lease_seconds=60, limit=10)
    failing, passing = first.rows
    finish_round(
        engine,
        relay,
        first.lanes,
        published=[Delivered(passing.outbox_id, 0, 0)],
        failed=[failing.outbox_id],
        error="_MSG_TIMED_OUT: Local: Message timed out",
    )
    second = claim_round(engine, relay, lanes=64, shift=0, lease_seconds=60, limit=10)
    assert sorted((row.message_key, row.kind) for row in second.rows) == sorted(
        [(failing.message_key, "order_received"), (passing.message_key, "order_updated")]
    )
    with engine.connect() as conn:
        assert backlog(conn).last_error == "_MSG_TIMED_OUT: Local: Message timed out"


def test_a_dead_relays_lease_expires(hub: HubRuntime) -> None:
    engine = hub.database.engine
    with engine.begin() as conn:
        write_outbox_rows(conn, order_rows(hub, orders=5, versions=1))
    dead = claim_round(engine, uuid.uuid4(), lanes=64, shift=0, lease_seconds=3, limit=10)
    assert len(dead.rows) == 5  # and its relay never finishes the round
    other = uuid.uuid4()
    assert claim_round(engine, other, lanes=64, shift=0, lease_seconds=60, limit=10).rows == []
    taken: list[int] = []
    wait_until(
        lambda: (
            taken.append(len(claim_round(engine, other, lanes=64, shift=0, lease_seconds=60, limit=10).rows))
            or taken[-1] == 5
        ),
        60,
        "the dead relay's lease expires and another relay takes its rows",
    )


def test_the_broker_state_keeps_the_start_of_an_outage(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert broker_state(conn).checked_at is None
        started = datetime.now(UTC) - timedelta(seconds=5)
        record_broker_state(engine, since=started, error="the Kafka broker does not answer")
        record_broker_state(engine, since=datetime.now(UTC), error="the Kafka broker does not answer")
        with engine.connect() as conn:
            state = broker_state(conn)
        assert state.unreachable_since == started
        assert state.checked_at is not None and state.last_error
        record_broker_state(engine, since=None)
        with engine.connect() as conn:
            assert broker_state(conn).unreachable_since is None
    finally:
        engine.dispose()
