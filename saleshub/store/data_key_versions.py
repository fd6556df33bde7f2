"""Which master key version wrapped the stored data keys, and rewrapping them by the newest.

Every wrapped key in ``data_keys.wrapped`` begins with ``<scheme>:v<n>:`` (``local`` or ``vault``,
then the master key version; ``saleshub.platform.keys``), so counting keys per version and finding
those an older version wrapped is SQL over the first bytes of the column, with no key unwrapped.

Rewrapping is resumable: ``keys_to_rewrap`` pages through the keys of one scheme not yet wrapped by
the newest version in ``key_id`` order, and ``store_rewrapped`` replaces a key only while it still
holds what was read (a key erased or rewrapped meanwhile is left alone), so an interrupted run is
simply run again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, LargeBinary, Uuid, text, update
from sqlalchemy.sql import column, table

from saleshub.platform.keys import MasterKey
from saleshub.store.arrays import array_rows

__all__ = [
    "RewrapResult",
    "WrappedVersion",
    "count_by_version",
    "count_to_rewrap",
    "keys_to_rewrap",
    "rewrap_all",
    "store_rewrapped",
]

# The first bytes of a wrapped key hold its prefix (``vault:v123456:`` is 14 bytes).
_HEAD = 32
_data_keys = table("data_keys", column("key_id", Uuid()), column("wrapped", LargeBinary()))


@dataclass(frozen=True, slots=True)
class WrappedVersion:
    """How many data keys one master key version wrapped (``scheme`` ``local`` or ``vault``)."""

    scheme: str
    version: int | None  # None: the key does not begin with ``<scheme>:v<n>:``
    keys: int


def count_by_version(connection: Connection) -> list[WrappedVersion]:
    """The data keys per scheme and master key version, oldest version first."""
    rows = connection.execute(
        text(
            f"""
            SELECT split_part(head, ':', 1) AS scheme, split_part(head, ':', 2) AS version,
                   count(*) AS keys
            FROM (SELECT encode(substring(wrapped FROM 1 FOR {_HEAD}), 'escape') AS head
                  FROM data_keys) AS heads
            GROUP BY 1, 2
            """
        )
    ).all()
    found = [
        WrappedVersion(
            str(row.scheme),
            int(row.version[1:]) if row.version[:1] == "v" and row.version[1:].isdigit() else None,
            int(row.keys),
        )
        for row in rows
    ]
    return sorted(found, key=lambda item: (item.scheme, item.version or 0))


# Keys of one scheme that an older version wrapped (parameters from ``_parameters``).
_OLDER = (
    "substring(wrapped FROM 1 FOR :scheme_length) = :scheme "
    "AND substring(wrapped FROM 1 FOR :newest_length) <> :newest"
)


def _parameters(scheme: str, newest: bytes) -> dict[str, object]:
    head = f"{scheme}:v".encode("ascii")
    return {"scheme": head, "scheme_length": len(head), "newest": newest, "newest_length": len(newest)}


def count_to_rewrap(connection: Connection, scheme: str, newest: bytes) -> int:
    """How many keys of ``scheme`` do not begin with ``newest`` (the newest version's prefix)."""
    return int(
        connection.execute(
            text(f"SELECT count(*) FROM data_keys WHERE {_OLDER}"),
            _parameters(scheme, newest),
        ).scalar_one()
    )


def keys_to_rewrap(
    connection: Connection, scheme: str, newest: bytes, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, bytes]]:
    """The next ``limit`` keys of ``scheme`` not wrapped by ``newest``, after ``after`` by id."""
    rows = connection.execute(
        text(
            f"""
            SELECT key_id, wrapped FROM data_keys
            WHERE {_OLDER} AND (CAST(:after AS uuid) IS NULL OR key_id > :after)
            ORDER BY key_id
            LIMIT :limit
            """
        ),
        {**_parameters(scheme, newest), "after": after, "limit": limit},
    ).all()
    return [(row.key_id, bytes(row.wrapped)) for row in rows]


def store_rewrapped(connection: Connection, rows: Sequence[tuple[uuid.UUID, bytes, bytes]]) -> int:
    """Replace each ``(key_id, old, new)`` key still holding ``old``; how many were replaced."""
    if not rows:
        return 0
    batch = array_rows(("key_id", Uuid()), ("old", LargeBinary()), ("new", LargeBinary()))
    statement = (
        update(_data_keys)
        .where(_data_keys.c.key_id == batch.c.key_id, _data_keys.c.wrapped == batch.c.old)
        .values(wrapped=batch.c.new)
    )
    result = connection.execute(
        statement,
        {
            "key_id_array": [row[0] for row in rows],
            "old_array": [row[1] for row in rows],
            "new_array": [row[2] for row in rows],
        },
    )
    return int(result.rowcount)


@dataclass(frozen=True, slots=True)
class RewrapResult:
    """What one rewrap run did: keys rewrapped, keys changed meanwhile (erased or rewrapped by
    another run, left alone), and keys already wrapped by the newest version before it started."""

    version: int
    rewrapped: int
    changed_meanwhile: int
    already_newest: int


def rewrap_all(
    engine: Engine,
    master: MasterKey,
    *,
    batch_size: int = 1_000,
    on_batch: Callable[[int], None] | None = None,
) -> RewrapResult:
    """Rewrap every data key of ``master``'s scheme not yet wrapped by its newest version.

    One batch is read, rewrapped by the master key (one round trip, no key unwrapped for Vault)
    and written back in its own transaction; ``on_batch`` gets the batch's size. The hub keeps
    running meanwhile: a key it creates is already the newest, a key erased meanwhile stays erased.
    """
    version = master.newest_version()
    newest = master.prefix(version)
    with engine.connect() as connection:
        already = next(
            (
                v.keys
                for v in count_by_version(connection)
                if v.scheme == master.scheme and v.version == version
            ),
            0,
        )
    rewrapped = changed = 0
    after: uuid.UUID | None = None
    while True:
        with engine.connect() as connection:
            batch = keys_to_rewrap(connection, master.scheme, newest, after, batch_size)
        if not batch:
            break
        fresh = master.rewrap([wrapped for _, wrapped in batch])
        with engine.begin() as connection:
            stored = store_rewrapped(
                connection, [(key_id, old, new) for (key_id, old), new in zip(batch, fresh, strict=True)]
            )
        rewrapped += stored
        changed += len(batch) - stored
        after = batch[-1][0]
        if on_batch is not None:
            on_batch(len(batch))
    return RewrapResult(version, rewrapped, changed, already)
