"""The hashes of the tamper-evident audit trail: leaves, Merkle roots, the seal chain, packed leaf lists.

Pure functions, no database (``saleshub.actions.audit_trail`` reads the rows and the seals):

* a **leaf** is ``SHA-256(0x00 || canonical JSON of a row's immutable columns)``: keys sorted, no
  spaces, UTF-8; a UUID as its text, a time as UTC ISO 8601 with microseconds, bytes as lower-case
  hex, JSON columns as their value (keys sorted too). The trail's name is one of the keys, so an
  event and an action can never hash alike;
* a **Merkle root** follows RFC 6962 (Certificate Transparency): an interior node is
  ``SHA-256(0x01 || left || right)``, the tree of ``n`` leaves splits at the largest power of two
  below ``n``, the empty tree is ``SHA-256("")``;
* a period's **root** is ``SHA-256(0x02 || events root || actions root)``;
* the **chain** hash of a seal is ``SHA-256(previous chain || root || period start | period end |
  events count | actions count)``; the first seal's previous chain is 32 zero bytes (``GENESIS``);
* a **packed leaf list** is the ids in order, each followed by its leaf hash, zlib-compressed: what a
  seal keeps so that a verification can name the row that differs, itself checked against the root.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "GENESIS",
    "HASH_SIZE",
    "LeafId",
    "chain_hash",
    "leaf_hash",
    "merkle_root",
    "pack_leaves",
    "period_root",
    "unpack_leaves",
]

HASH_SIZE = 32
GENESIS = bytes(HASH_SIZE)

LeafId = uuid.UUID | int


def _canonical(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"a sealed time must carry its zone: {value!r}")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return value


def leaf_hash(trail: str, row: Mapping[str, Any]) -> bytes:
    """The leaf of one row (its immutable columns only) of ``trail``."""
    document = {"trail": trail, **{name: _canonical(value) for name, value in row.items()}}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(b"\x00" + text.encode("utf-8")).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The RFC 6962 Merkle tree hash of ``leaves`` (already leaf hashes), bottom up.

    Pairing each level left to right and carrying a last odd node up unchanged builds the same tree
    as RFC 6962's split at the largest power of two (a unit test compares the two).
    """
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    while len(level) > 1:
        paired = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def period_root(events_root: bytes, actions_root: bytes) -> bytes:
    """The root of one period: both trails' roots, hashed together."""
    return hashlib.sha256(b"\x02" + events_root + actions_root).digest()


def chain_hash(
    previous: bytes, root: bytes, start: datetime, end: datetime, events: int, actions: int
) -> bytes:
    """The chain hash of a seal (see the module docstring)."""
    fields = f"{_canonical(start)}|{_canonical(end)}|{events}|{actions}".encode()
    return hashlib.sha256(previous + root + fields).digest()


def pack_leaves(leaves: Iterable[tuple[LeafId, bytes]]) -> bytes:
    """``(id, leaf hash)`` pairs, in order, as one compressed value (an id: a UUID or an integer)."""
    parts = []
    for key, leaf in leaves:
        parts.append(key.bytes if isinstance(key, uuid.UUID) else key.to_bytes(8, "big", signed=True))
        parts.append(leaf)
    return zlib.compress(b"".join(parts))


def unpack_leaves(packed: bytes, *, uuids: bool) -> list[tuple[LeafId, bytes]]:
    """The pairs of ``pack_leaves`` (ids are UUIDs when ``uuids``, integers otherwise).

    Raises ``ValueError`` when the value is not a list of whole pairs (a damaged seal).
    """
    try:
        raw = zlib.decompress(packed)
    except zlib.error as exc:
        raise ValueError(f"the leaf list does not decompress: {exc}") from exc
    id_size = 16 if uuids else 8
    step = id_size + HASH_SIZE
    if len(raw) % step:
        raise ValueError(f"the leaf list has {len(raw)} bytes, not whole ({step}-byte) pairs")
    pairs: list[tuple[LeafId, bytes]] = []
    for offset in range(0, len(raw), step):
        key = raw[offset : offset + id_size]
        ident: LeafId = uuid.UUID(bytes=key) if uuids else int.from_bytes(key, "big", signed=True)
        pairs.append((ident, raw[offset + id_size : offset + step]))
    return pairs
