"""The one port to personal data at rest: data keys per order, sealing on write, opening on read.

Every stage that writes or reads personal data goes through ``personal_data(conn)``, the
``PersonalData`` of the connection's database; every other stage sees only sealed bytes or facts.

* **Keys.** One AES-256 data key per order, found by ``(source_system, order key)`` in
  ``order_data_keys`` (an event whose order is unknown gets its own, ``event:<id>``), stored only
  wrapped by the master key (``saleshub.platform.keys``). Intake and processing look the mapping up
  in PostgreSQL every time (``FOR KEY SHARE``, so an erasure deleting it waits for the transaction
  that uses it) and never cache it; only unwrapped keys are cached, by id, in memory. New keys come
  from a pool wrapped in batches, so a new order costs no round trip to Vault.
* **Raw bodies** are sealed whole, bound to their SHA-256 (``body_sha256``, kept in clear).
* **Orders and versions** keep their non-personal facts in ``content`` (JSONB, queried by
  reconciliation and reports) and the fields of ``canonical.PERSONAL_DATA_FIELDS`` sealed in
  ``personal``, bound to the hub order id; ``open_order`` merges them back.
* **Outbox payloads** of order events are sealed with their order's key; the relay opens them.
* **Erasure** deletes a subject's data keys (``erase_keys``): everything they sealed is unreadable
  from then on, in this database and in every copy of it taken afterwards. Opening a row whose key
  is gone answers ``ERASED`` instead of raising.
* **Blind index** (``personal_index``): keyed HMAC-SHA256 digests of e-mail, phone and customer
  reference, written with each order version, find a subject's orders without clear values. Its
  key (a data key of its own, never erased) is held like an unwrapped key, for the cache period.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from sqlalchemy import Connection, Engine, text

from canonical.model import PERSONAL_DATA_FIELDS
from saleshub.errors import FatalError, KeyServiceError, RetriableError
from saleshub.platform.keys import (
    DataKeyCache,
    LocalMasterKey,
    MasterKey,
    SealBrokenError,
    master_key,
    new_data_key,
    seal,
    unseal,
)
from saleshub.platform.masking import is_personal_name
from saleshub.platform.secrets import SecretStore, secret_store_from_settings
from saleshub.platform.settings import Settings

__all__ = [
    "ERASED",
    "INDEX_KINDS",
    "POOL_SECONDS",
    "DataKey",
    "Erased",
    "PersonalData",
    "attach_personal_data",
    "index_values",
    "merge_personal",
    "personal_data",
    "personal_data_from_settings",
    "sealed_paths",
    "split_personal",
]

#: What the blind index holds, with how a value is normalised before its digest.
INDEX_KINDS: Final = ("email", "phone", "customer_ref")
_INDEX_PAIR: Final = ("_hub", "blind-index")  # the data key whose bytes key the index's HMAC
_POOL_BATCH: Final = 64
# A pre-wrapped key older than this is dropped unused: after a master-key rotation, keys wrapped by
# the old version stop being handed out within this time (then `saleshub keys rewrap` catches all).
POOL_SECONDS: Final = 60.0


class DataKey(NamedTuple):
    """A data key: its id (stored with what it seals) and its bytes (only ever in memory)."""

    key_id: uuid.UUID
    key: bytes


class Erased:
    """What opening a value whose data key was destroyed gives (the subject was erased): ``ERASED``."""

    def __repr__(self) -> str:
        return "ERASED"


ERASED: Final = Erased()

_PATHS = tuple(sorted(tuple(path.split(".")) for path in PERSONAL_DATA_FIELDS))


def sealed_paths(content: Mapping[str, Any], extra: Iterable[str] = ()) -> list[tuple[str, ...]]:
    """The paths sealed at rest in an order: the personal fields, every ``system_metadata`` entry
    named like personal data (``loyalty_card``), and ``extra`` (the fields a mapping fills with
    personal data by acknowledgement); paths into lists are not separate (their record is sealed
    only through the fields above)."""
    metadata = content.get("system_metadata")
    named = (
        [("system_metadata", key) for key in metadata if is_personal_name(key)]
        if isinstance(metadata, dict)
        else []
    )
    more = [tuple(path.split(".")) for path in extra if "[" not in path]
    return sorted({*_PATHS, *named, *more})


def split_personal(
    content: Mapping[str, Any], extra: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The order's JSON without what is sealed at rest (``sealed_paths``), and that, by dotted path.

    ``content`` is left as it was. Only the objects on a sealed field's path are copied (shallowly):
    the facts share every other part with ``content`` (a deep copy of the whole order cost more
    than sealing it).
    """
    facts = dict(content)
    copied: set[int] = set()
    personal: dict[str, Any] = {}
    for path in sealed_paths(content, extra):
        parent = facts
        for part in path[:-1]:
            child = parent.get(part)
            if not isinstance(child, dict):
                break
            if id(child) not in copied:
                child = dict(child)
                copied.add(id(child))
                parent[part] = child
            parent = child
        else:
            if path[-1] in parent:  # a null too: merged back as it was
                personal[".".join(path)] = parent.pop(path[-1])
    return facts, personal


def merge_personal(facts: Mapping[str, Any], personal: Mapping[str, Any]) -> dict[str, Any]:
    """The whole order JSON again: ``facts`` with the personal fields put back.

    ``facts`` is left as it was; as in ``split_personal`` only the objects on a field's path are copied.
    """
    content = dict(facts)
    copied: set[int] = set()
    for dotted, value in personal.items():
        *parents, last = dotted.split(".")
        target = content
        for part in parents:
            child = target.get(part)
            if child is None:
                child = target[part] = {}
                copied.add(id(child))
            elif id(child) not in copied:
                child = target[part] = dict(child)
                copied.add(id(child))
            target = child
        target[last] = value
    return content


def index_values(content: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The order's ``(kind, normalised value)`` pairs for the blind index."""
    customer = content.get("customer") or {}
    found = []
    if isinstance(customer, dict):
        if customer.get("email"):
            found.append(("email", str(customer["email"]).strip().lower()))
        if customer.get("phone"):
            found.append(("phone", "".join(ch for ch in str(customer["phone"]) if ch.isdigit() or ch == "+")))
        if customer.get("external_customer_id"):
            found.append(("customer_ref", str(customer["external_customer_id"]).strip()))
    metadata = content.get("system_metadata") or {}
    if isinstance(metadata, dict):  # a loyalty card number and the like: references to one person
        found += [
            ("customer_ref", str(value).strip())
            for key, value in sorted(metadata.items())
            if value and is_personal_name(key)
        ]
    return found


_LOOKUP = text(
    "SELECT m.source_system, m.order_key, m.key_id, d.wrapped "
    "FROM unnest(CAST(:systems AS text[]), CAST(:order_keys AS text[])) AS w(source_system, order_key) "
    "JOIN order_data_keys m USING (source_system, order_key) JOIN data_keys d USING (key_id) "
    "FOR KEY SHARE OF m"
)
_FIND_OR_CREATE = text(
    "WITH input AS (SELECT * FROM unnest(CAST(:systems AS text[]), CAST(:order_keys AS text[]), "
    "  CAST(:key_ids AS uuid[]), CAST(:wrapped AS bytea[])) "
    "  AS t(source_system, order_key, key_id, wrapped)), "
    "found AS (SELECT m.source_system, m.order_key, m.key_id, d.wrapped FROM input "
    "  JOIN order_data_keys m USING (source_system, order_key) JOIN data_keys d ON d.key_id = m.key_id "
    "  FOR KEY SHARE OF m), "
    "mapped AS (INSERT INTO order_data_keys (source_system, order_key, key_id) "
    "  SELECT source_system, order_key, key_id FROM input ON CONFLICT DO NOTHING "
    "  RETURNING source_system, order_key, key_id), "
    "stored AS (INSERT INTO data_keys (key_id, wrapped) SELECT i.key_id, i.wrapped FROM input i "
    "  JOIN mapped USING (key_id)) "
    "SELECT source_system, order_key, key_id, wrapped, false AS created FROM found "
    "UNION ALL SELECT source_system, order_key, key_id, NULL, true FROM mapped"
)
_ANY_KEY = text("SELECT key_id, wrapped FROM data_keys LIMIT 1")
_WRAPPED = text("SELECT key_id, wrapped FROM data_keys WHERE key_id = ANY(CAST(:ids AS uuid[]))")
_INDEX = text(
    "INSERT INTO personal_index (kind, digest, hub_order_id) SELECT * FROM unnest("
    "CAST(:kinds AS text[]), CAST(:digests AS bytea[]), CAST(:orders AS uuid[])) ON CONFLICT DO NOTHING"
)


@dataclass
class _Fresh:
    key_id: uuid.UUID
    key: bytes
    wrapped: bytes
    made: float  # time.monotonic() when wrapped


class PersonalData:
    """Data keys and sealing for one database (see the module docstring); thread-safe."""

    def __init__(self, master: MasterKey, cache_seconds: float) -> None:
        self.master = master
        self.cache = DataKeyCache(cache_seconds)
        self._pool: list[_Fresh] = []
        self._lock = threading.Lock()
        self._index_held: tuple[bytes, float] | None = None

    # -- keys ---------------------------------------------------------------------------------

    def _fresh(self, count: int) -> list[_Fresh]:
        with self._lock:
            oldest = time.monotonic() - POOL_SECONDS
            self._pool = [item for item in self._pool if item.made >= oldest]
            while len(self._pool) < count:
                keys = [new_data_key() for _ in range(max(_POOL_BATCH, count - len(self._pool)))]
                wrapped = self.master.wrap(keys)
                now = time.monotonic()
                self._pool.extend(_Fresh(uuid.uuid4(), k, w, now) for k, w in zip(keys, wrapped, strict=True))
            taken, self._pool = self._pool[:count], self._pool[count:]
            return taken

    def _give_back(self, unused: Iterable[_Fresh]) -> None:
        with self._lock:
            self._pool.extend(unused)

    def order_keys(
        self, conn: Connection, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], DataKey]:
        """The data key of each ``(source_system, order key)``, made now for a pair that has none."""
        wanted = sorted(set(pairs))
        if not wanted:
            return {}
        # One statement finds the existing keys and makes the missing ones, each pair offered a
        # fresh key from the pool (those not taken go back): one round trip per batch, not two.
        fresh = {item.key_id: item for item in self._fresh(len(wanted))}
        rows = conn.execute(
            _FIND_OR_CREATE,
            {
                "systems": [p[0] for p in wanted],
                "order_keys": [p[1] for p in wanted],
                "key_ids": list(fresh),
                "wrapped": [item.wrapped for item in fresh.values()],
            },
        ).all()
        existing = [row for row in rows if not row.created]
        keys = self._unwrapped(existing)
        found = {
            (row.source_system, row.order_key): DataKey(row.key_id, keys[row.key_id]) for row in existing
        }
        for row in rows:
            if row.created:
                item = fresh.pop(row.key_id)
                self.cache.put(item.key_id, item.key)
                found[row.source_system, row.order_key] = DataKey(item.key_id, item.key)
        self._give_back(fresh.values())
        if len(found) < len(wanted):  # made by a concurrent transaction after this one's snapshot
            found.update(self._lookup(conn, [pair for pair in wanted if pair not in found]))
        if len(found) < len(wanted):
            raise FatalError("a data key was neither found nor made for an order; retry the batch")
        return found

    def _lookup(self, conn: Connection, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], DataKey]:
        rows = conn.execute(
            _LOOKUP, {"systems": [p[0] for p in pairs], "order_keys": [p[1] for p in pairs]}
        ).all()
        keys = self._unwrapped(rows)
        return {(row.source_system, row.order_key): DataKey(row.key_id, keys[row.key_id]) for row in rows}

    def _unwrapped(self, rows: Sequence[Any]) -> dict[uuid.UUID, bytes]:
        """Keys of ``rows`` (``key_id``, ``wrapped``) from the cache, the others unwrapped in one call."""
        keys: dict[uuid.UUID, bytes] = {}
        todo = []
        for row in rows:
            cached = self.cache.get(row.key_id)
            if cached is not None:
                keys[row.key_id] = cached
            else:
                todo.append(row)
        if todo:
            try:
                clear = self.master.unwrap([bytes(row.wrapped) for row in todo])
            except RetriableError:  # unreachable only: a refused or wrong master key is never papered over
                stale = {row.key_id: self.cache.get(row.key_id, stale_ok=True) for row in todo}
                if any(value is None for value in stale.values()):
                    raise
                return {**keys, **{k: v for k, v in stale.items() if v is not None}}
            for row, key in zip(todo, clear, strict=True):
                self.cache.put(row.key_id, key)
                keys[row.key_id] = key
        return keys

    def keys(self, conn: Connection, key_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, bytes]:
        """The data keys of these ids that still exist (a destroyed one is left out: erased)."""
        wanted = {key_id for key_id in key_ids if key_id is not None}
        if not wanted:
            return {}
        rows = conn.execute(_WRAPPED, {"ids": list(wanted)}).all()
        return self._unwrapped(rows)

    def index_digests(self, conn: Connection, values: Sequence[tuple[str, str]]) -> list[bytes]:
        """The blind index's digest of each ``(kind, normalised value)``."""
        key = self._index_key(conn)
        return [
            hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).digest()[:16] for kind, value in values
        ]

    def _index_key(self, conn: Connection) -> bytes:
        """The blind index's key, read at most once per cache period (as an unwrapped key is kept).

        No erasure deletes it and rotation rewraps the same bytes, so holding it saves a statement
        in every processing batch without ever using a key that is gone.
        """
        held = self._index_held
        if held is not None and time.monotonic() - held[1] <= self.cache.seconds:
            return held[0]
        key = self.order_keys(conn, [_INDEX_PAIR])[_INDEX_PAIR].key
        self._index_held = (key, time.monotonic())
        return key

    def index_orders(self, conn: Connection, orders: Sequence[tuple[uuid.UUID, Mapping[str, Any]]]) -> None:
        """Add each order's e-mail, phone and customer reference to the blind index."""
        entries = [
            (order_id, kind, value) for order_id, content in orders for kind, value in index_values(content)
        ]
        if not entries:
            return
        digests = self.index_digests(conn, [(kind, value) for _, kind, value in entries])
        conn.execute(
            _INDEX,
            {
                "kinds": [kind for _, kind, _ in entries],
                "digests": digests,
                "orders": [order_id for order_id, _, _ in entries],
            },
        )

    def verify(self, conn: Connection) -> None:
        """Refuse a local key file that does not open this database's data keys.

        A key file that went missing is created anew on first use; were the database to hold data
        keys already, everything sealed from then on would open only with that accidental key, and
        nothing sealed before would open. So the first use opens one stored data key: a key file
        that cannot is refused with the file's path and the fix (and removed if this process
        created it). A Vault transit key is not checked here: Vault names a missing or refused key.
        """
        if not isinstance(self.master, LocalMasterKey):
            return
        row = conn.execute(_ANY_KEY).first()
        if row is None:
            return
        try:
            self._unwrapped([row])
        except KeyServiceError as exc:
            created = self.master.create()
            self.master.discard_created()
            if created:
                raise KeyServiceError(
                    f"the master key file {self.master.path} was not found, and this database holds data "
                    "keys wrapped by another key: restore the key file from its backup (or point "
                    "SALESHUB_PRIVACY__KEY_FILE at it); a new key would open none of them"
                ) from exc
            raise

    # -- sealing ------------------------------------------------------------------------------

    @staticmethod
    def seal_body(key: DataKey, body: bytes, sha256: bytes) -> bytes:
        """A raw body sealed with its order's key, bound to its SHA-256."""
        return seal(key.key, body, sha256)

    def open_bodies(
        self, conn: Connection, rows: Sequence[tuple[bytes | None, uuid.UUID | None, bytes]]
    ) -> list[bytes | Erased | SealBrokenError | None]:
        """Each ``(raw_body, data_key_id, body_sha256)`` opened: bytes, ``ERASED``, ``None`` (purged).

        A body that does not authenticate (altered in the database) is given as its
        ``SealBrokenError``, not raised, so one bad row never stops a batch: the caller fails that
        event with the error's message, or raises it.
        """
        keys = self.keys(conn, [key_id for body, key_id, _ in rows if body is not None])
        opened: list[bytes | Erased | SealBrokenError | None] = []
        for body, key_id, sha in rows:
            if body is None:
                opened.append(None)
            elif key_id is None:  # written before encryption, not yet sealed: its hash stands for it
                clear = bytes(body)
                if hashlib.sha256(clear).digest() != bytes(sha):
                    opened.append(
                        SealBrokenError(
                            "a raw body stored in clear does not match its recorded SHA-256: it was "
                            "altered or replaced in the database"
                        )
                    )
                else:
                    opened.append(clear)
            elif key_id not in keys:
                opened.append(ERASED)
            else:
                try:
                    opened.append(unseal(keys[key_id], bytes(body), bytes(sha)))
                except SealBrokenError as exc:
                    opened.append(exc)
        return opened

    def open_body(
        self, conn: Connection, body: bytes | None, key_id: uuid.UUID | None, sha256: bytes
    ) -> bytes | Erased | None:
        """One raw body opened (see ``open_bodies``); ``SealBrokenError`` raised."""
        opened = self.open_bodies(conn, [(body, key_id, sha256)])[0]
        if isinstance(opened, SealBrokenError):
            raise opened
        return opened

    @staticmethod
    def seal_personal(key: DataKey, hub_order_id: uuid.UUID, personal: Mapping[str, Any]) -> bytes:
        """An order's personal fields sealed with its key, bound to the order."""
        return seal(
            key.key, json.dumps(personal, ensure_ascii=False, sort_keys=True).encode(), hub_order_id.bytes
        )

    def open_orders(
        self,
        conn: Connection,
        rows: Sequence[tuple[uuid.UUID, Mapping[str, Any], bytes | None, uuid.UUID | None]],
    ) -> list[dict[str, Any] | Erased]:
        """Each ``(hub_order_id, content, personal, data_key_id)`` as the whole order JSON, or ``ERASED``.

        An erased order's facts stay readable with ``content`` itself; this gives ``ERASED`` so no
        caller mistakes them for the whole order.
        """
        keys = self.keys(conn, [key_id for _, _, _, key_id in rows])
        opened: list[dict[str, Any] | Erased] = []
        for order_id, content, sealed, key_id in rows:
            if key_id is None:
                opened.append(dict(content))
            elif key_id not in keys:
                opened.append(ERASED)
            else:
                clear = b"{}" if sealed is None else unseal(keys[key_id], bytes(sealed), order_id.bytes)
                opened.append(merge_personal(content, json.loads(clear)))
        return opened

    def open_order(
        self,
        conn: Connection,
        hub_order_id: uuid.UUID,
        content: Mapping[str, Any],
        sealed: bytes | None,
        key_id: uuid.UUID | None,
    ) -> dict[str, Any] | Erased:
        """One order opened (see ``open_orders``)."""
        return self.open_orders(conn, [(hub_order_id, content, sealed, key_id)])[0]

    @staticmethod
    def seal_payload(key: DataKey, payload: bytes, event_id: uuid.UUID) -> bytes:
        """An outbox payload sealed with its order's key, bound to its event."""
        return seal(key.key, payload, event_id.bytes)

    def open_payloads(
        self, conn: Connection, rows: Sequence[tuple[bytes, uuid.UUID | None, uuid.UUID]]
    ) -> list[bytes | Erased]:
        """Each ``(payload, data_key_id, event_id)`` opened: the Avro bytes, or ``ERASED``."""
        keys = self.keys(conn, [key_id for _, key_id, _ in rows])
        return [
            bytes(payload)
            if key_id is None
            else (ERASED if key_id not in keys else unseal(keys[key_id], bytes(payload), event_id.bytes))
            for payload, key_id, event_id in rows
        ]

    def forget(self, key_ids: Sequence[uuid.UUID]) -> None:
        """Drop erased keys from this process's cache at once."""
        self.cache.forget(list(key_ids))

    def close(self) -> None:
        """Release the master key's connections."""
        self.master.close()

    def __repr__(self) -> str:
        return f"PersonalData({self.master.name}, {self.cache!r})"


_PORTS: weakref.WeakKeyDictionary[Engine, PersonalData] = weakref.WeakKeyDictionary()
_FACTORIES: weakref.WeakKeyDictionary[Engine, Callable[[], PersonalData]] = weakref.WeakKeyDictionary()
_PORTS_LOCK = threading.Lock()


def attach_personal_data(engine: Engine, factory: Callable[[], PersonalData]) -> None:
    """Make ``factory()`` (called on first use) the personal-data port of ``engine``'s connections."""
    with _PORTS_LOCK:
        _FACTORIES[engine] = factory
        _PORTS.pop(engine, None)


def personal_data_from_settings(settings: Settings, secrets: SecretStore | None = None) -> PersonalData:
    """The port with the master key the settings choose (``secrets``: the Vault store to share)."""
    if settings.privacy.keys == "vault" and secrets is None:
        secrets = secret_store_from_settings(settings)
    return PersonalData(master_key(settings, secrets), settings.privacy.key_cache_seconds)


def personal_data(conn: Connection) -> PersonalData:
    """The personal-data port of ``conn``'s database (the environment's settings if none was attached)."""
    engine = conn.engine
    port = _PORTS.get(engine)
    if port is None:
        with _PORTS_LOCK:
            port = _PORTS.get(engine)
            if port is None:
                factory = _FACTORIES.get(engine)
                made = factory() if factory is not None else personal_data_from_settings(Settings())
                made.verify(conn)  # once per database and process, before anything is sealed
                port = _PORTS[engine] = made
    return port
