"""The audit trail's hashes: RFC 6962 Merkle roots, leaves of immutable columns, the chain, leaf lists."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from saleshub.actions.audit_hashing import (
    GENESIS,
    chain_hash,
    leaf_hash,
    merkle_root,
    pack_leaves,
    period_root,
    unpack_leaves,
)


def _rfc6962(leaves: list[bytes]) -> bytes:
    """The tree hash as RFC 6962 section 2.1 defines it, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return hashlib.sha256(b"\x01" + _rfc6962(leaves[:split]) + _rfc6962(leaves[split:])).digest()


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 100])
def test_the_root_is_rfc_6962s(count: int) -> None:
    leaves = [hashlib.sha256(b"\x00" + bytes([i % 256, i // 256])).digest() for i in range(count)]
    assert merkle_root(leaves) == _rfc6962(leaves)


def test_any_leaf_changed_moved_added_or_removed_changes_the_root() -> None:
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(11)]
    root = merkle_root(leaves)
    changed = list(leaves)
    changed[6] = hashlib.sha256(b"other").digest()
    swapped = list(leaves)
    swapped[2], swapped[3] = swapped[3], swapped[2]
    assert (
        len(
            {
                root,
                merkle_root(changed),
                merkle_root(swapped),
                merkle_root(leaves[:-1]),
                merkle_root([*leaves, leaves[0]]),
            }
        )
        == 5
    )


ROW = {
    "event_id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
    "received_at": datetime(2026, 12, 7, 5, 30, tzinfo=UTC),
    "body_sha256": bytes(range(32)),
    "headers": {"b": "2", "a": "1"},
    "replay_of": None,
}


def test_a_leaf_depends_on_every_value_and_the_trail_but_not_on_key_order_or_zone() -> None:
    leaf = leaf_hash("events", ROW)
    assert leaf_hash("events", dict(reversed(list(ROW.items())))) == leaf
    same_instant = ROW["received_at"].astimezone(timezone(timedelta(hours=2)))  # type: ignore[attr-defined]
    assert leaf_hash("events", {**ROW, "received_at": same_instant}) == leaf
    assert leaf_hash("events", {**ROW, "headers": {"a": "1", "b": "2"}}) == leaf
    assert leaf_hash("actions", ROW) != leaf
    assert leaf_hash("events", {**ROW, "body_sha256": bytes(range(1, 33))}) != leaf
    assert leaf_hash("events", {**ROW, "headers": {"a": "1", "b": "3"}}) != leaf
    assert leaf_hash("events", {**ROW, "received_at": ROW["received_at"] + timedelta(microseconds=1)}) != leaf  # type: ignore[operator]
    with pytest.raises(ValueError, match="zone"):
        leaf_hash("events", {**ROW, "received_at": datetime(2026, 12, 7)})


def test_the_chain_covers_the_previous_chain_the_root_the_period_and_the_counts() -> None:
    start = datetime(2026, 12, 7, 5, tzinfo=UTC)
    end = start + timedelta(hours=1)
    root = period_root(merkle_root([]), merkle_root([b"x" * 32]))
    chain = chain_hash(GENESIS, root, start, end, 0, 1)
    assert chain_hash(GENESIS, root, start, end, 0, 1) == chain
    others = {
        chain_hash(b"\x01" * 32, root, start, end, 0, 1),
        chain_hash(GENESIS, period_root(merkle_root([]), merkle_root([])), start, end, 0, 1),
        chain_hash(GENESIS, root, end, end + timedelta(hours=1), 0, 1),
        chain_hash(GENESIS, root, start, end, 1, 1),
        chain_hash(GENESIS, root, start, end, 0, 2),
    }
    assert chain not in others and len(others) == 5


def test_leaf_lists_pack_and_unpack_and_a_damaged_one_says_so() -> None:
    events = [(uuid.uuid4(), hashlib.sha256(bytes([i])).digest()) for i in range(5)]
    actions = [(i * 1000, hashlib.sha256(bytes([i])).digest()) for i in range(1, 4)]
    assert unpack_leaves(pack_leaves(events), uuids=True) == events
    assert unpack_leaves(pack_leaves(actions), uuids=False) == actions
    assert unpack_leaves(pack_leaves([]), uuids=True) == []
    with pytest.raises(ValueError, match="decompress"):
        unpack_leaves(b"not zlib", uuids=True)
    with pytest.raises(ValueError, match="whole"):
        unpack_leaves(pack_leaves(actions), uuids=True)
