"""Data keys per order on the real PostgreSQL: found or made in one statement, once per order."""

from __future__ import annotations

import threading
import time

from sqlalchemy import event, text

from saleshub.runtime import HubRuntime
from saleshub.store.personal import DataKey, personal_data, personal_data_from_settings


def test_a_batch_finds_the_known_keys_and_makes_one_for_each_new_order(hub: HubRuntime) -> None:
    engine = hub.database.engine
    with engine.begin() as conn:
        port = personal_data(conn)
        known = port.order_keys(conn, [("pyxis", "DK-KNOWN")])[("pyxis", "DK-KNOWN")]
    with engine.begin() as conn:
        keys = port.order_keys(conn, [("pyxis", "DK-NEW"), ("pyxis", "DK-KNOWN"), ("pyxis", "DK-NEW")])
    assert set(keys) == {("pyxis", "DK-KNOWN"), ("pyxis", "DK-NEW")}
    assert keys["pyxis", "DK-KNOWN"] == known
    assert keys["pyxis", "DK-NEW"].key_id != known.key_id

    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT order_key, key_id FROM order_data_keys WHERE order_key LIKE 'DK-%'")
        ).all()
        mapped = {row.order_key: row.key_id for row in rows}
        # Fresh keys offered for orders that had one are not stored: every stored key is an order's.
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM data_keys d WHERE NOT EXISTS (SELECT FROM order_data_keys m WHERE m.key_id = d.key_id)"
            )
        ).scalar_one()
    assert mapped == {"DK-KNOWN": known.key_id, "DK-NEW": keys["pyxis", "DK-NEW"].key_id}
    assert orphans == 0

    cold = personal_data_from_settings(hub.settings)  # another process: nothing cached, keys unwrapped
    with engine.begin() as conn:
        assert cold.order_keys(conn, [("pyxis", "DK-KNOWN"), ("pyxis", "DK-NEW")]) == keys


def test_two_transactions_making_the_same_orders_key_end_with_one_key(hub: HubRuntime) -> None:
    engine = hub.database.engine
    pair = ("pyxis", "DK-RACE")
    other: list[DataKey] = []
    with engine.begin() as first:
        port = personal_data(first)
        made = port.order_keys(first, [pair])[pair]

        def second() -> None:
            with engine.begin() as conn:
                other.append(port.order_keys(conn, [pair])[pair])

        thread = threading.Thread(target=second)
        thread.start()
        # The second waits for the first's uncommitted key (its snapshot cannot see it); the first
        # commits only once the second is waiting, so the second must find the key afterwards.
        _wait_for_a_lock_wait(hub)
    thread.join(timeout=120)
    assert other == [made]


def _wait_for_a_lock_wait(hub: HubRuntime) -> None:
    deadline = time.monotonic() + 120
    with hub.database.engine.connect() as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%order_data_keys%'"
                )
            ).scalar_one()
            watcher.rollback()
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the second transaction never waited for the first's data key")


def test_the_blind_index_key_is_read_once_per_cache_period(hub: HubRuntime) -> None:
    engine = hub.database.engine
    port = personal_data_from_settings(hub.settings)  # a process of its own: nothing held yet
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.begin() as conn:
            first = port.index_digests(conn, [("email", "a@example.com")])
        read = len(statements)
        with engine.begin() as conn:
            again = port.index_digests(conn, [("email", "a@example.com"), ("phone", "+34600000000")])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert read >= 1  # the first call read the key
    assert len(statements) == read  # the second, within the cache period, used the one it holds
    assert again[0] == first[0] and again[1] != first[0]
