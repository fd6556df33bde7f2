"""Envelope encryption of personal data: the master key that wraps data keys, and AES-256-GCM.

Personal data at rest (raw bodies, the personal fields of orders and versions, outbox payloads) is
encrypted with a *data key* per order (``saleshub.store.data_keys``). A data key is 32 random bytes,
used with AES-256-GCM (``seal``/``unseal``: a fresh 96-bit nonce per message, the row's identity as
associated data, so a ciphertext copied onto another row does not open). Data keys are stored only
*wrapped* by the master key:

* ``LocalMasterKey``: a key file (``privacy.key_file``, created with mode 600 on first use), the
  embedded default. The file holds numbered key versions; ``rotate`` appends one, new wraps use the
  newest, any listed version unwraps. A process reads the file again when it changed (a rotation by
  ``saleshub keys rotate`` in another process).
* ``VaultTransitKey``: a key of Vault's transit engine (``transit/encrypt|decrypt|rewrap``), where
  the key never leaves Vault.

Both take and return lists, so a batch of keys costs one round trip. An unwrapped key lives only in
memory (``DataKeyCache``, for ``privacy.key_cache_seconds``); it is never written or logged.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import stat
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from typing_extensions import override

from saleshub.errors import ConfigurationError, KeyServiceError

if TYPE_CHECKING:  # the Vault side (hvac) is imported only when the settings choose it
    from saleshub.platform.secrets import SecretStore
    from saleshub.platform.settings import Settings

__all__ = [
    "DATA_KEY_BYTES",
    "DataKeyCache",
    "LocalMasterKey",
    "MasterKey",
    "SealBrokenError",
    "master_key",
    "new_data_key",
    "seal",
    "unseal",
]

DATA_KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12


class SealBrokenError(KeyServiceError):
    """A ciphertext does not open with its data key: altered, moved to another row, or a wrong key."""


def new_data_key() -> bytes:
    """32 random bytes from the operating system's generator."""
    return secrets.token_bytes(DATA_KEY_BYTES)


def seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """``nonce || AES-256-GCM(plaintext)`` bound to ``associated`` (the row's identity)."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def unseal(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    """The plaintext of ``seal``'s output; ``SealBrokenError`` when it does not authenticate."""
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], associated)
    except (InvalidTag, ValueError) as exc:
        raise SealBrokenError(
            "an encrypted value does not authenticate with its data key: it was altered or copied "
            "from another row"
        ) from exc


class MasterKey(ABC):
    """The key that wraps and unwraps data keys; every call takes a batch (one round trip).

    Every wrapped key begins with ``<scheme>:v<n>:`` (``prefix``), so the store can tell which
    master key and version wrapped it without unwrapping (``saleshub.store.data_key_versions``).
    """

    #: Where the key is, for messages and ``saleshub status`` (``local:<file>``, ``vault:<mount>/<key>``).
    name: str
    #: The first word of every key this master key wraps (``local``, ``vault``).
    scheme: str

    @abstractmethod
    def wrap(self, keys: Sequence[bytes]) -> list[bytes]:
        """The data keys wrapped by the newest master key version, in order."""

    @abstractmethod
    def unwrap(self, wrapped: Sequence[bytes]) -> list[bytes]:
        """The data keys of wrapped ones, in order (``KeyServiceUnavailableError`` while unreachable)."""

    @abstractmethod
    def rewrap(self, wrapped: Sequence[bytes]) -> list[bytes]:
        """The same data keys wrapped by the newest master key version, without unwrapping them here."""

    @abstractmethod
    def rotate(self) -> int:
        """Make a new master key version the one that wraps; returns its number."""

    @abstractmethod
    def version(self, wrapped: bytes) -> int:
        """The master key version that wrapped this key."""

    @abstractmethod
    def newest_version(self) -> int:
        """The version that wraps now (Vault: read from the key, an administrator's capability)."""

    def create(self) -> bool:
        """Create the master key unless it exists (``saleshub keys init``); whether it was created."""
        return False

    def prefix(self, version: int) -> bytes:
        """How every key wrapped by ``version`` begins."""
        return f"{self.scheme}:v{version}:".encode("ascii")

    def close(self) -> None:  # noqa: B027  (a hook: the local key holds nothing to release)
        """Release connections."""


class LocalMasterKey(MasterKey):
    """A master key in a local file (mode 600): JSON ``{"versions": {"1": "<base64 32 bytes>", …}}``.

    A wrapped key is ``b"local:v<n>:" + seal(master_n, key, b"data-key")``.
    """

    scheme = "local"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = f"local:{path}"
        self._lock = threading.Lock()
        self._created = False
        self._versions = self._load_or_create()
        self._seen = self._stamp()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the key file's lock file: one process creates or rotates the file at a time."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def _load_or_create(self) -> dict[int, bytes]:
        if not self.path.exists():
            with self._exclusive():
                if not self.path.exists():  # two processes starting at once create one key
                    versions = {1: new_data_key()}
                    self._write(versions)
                    self._created = True
                    return versions
        return self._read()

    def _read(self) -> dict[int, bytes]:
        if self.path.is_dir():
            raise KeyServiceError(
                f"the master key file {self.path} is a directory; SALESHUB_PRIVACY__KEY_FILE names the file"
            )
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
        except OSError as exc:
            raise KeyServiceError(
                f"the master key file {self.path} cannot be read ({exc.strerror}); restore it from its "
                "backup: without it no personal data can be read"
            ) from None
        if mode & 0o077:
            raise KeyServiceError(
                f"the master key file {self.path} is readable by others (mode {mode:o}); "
                f"run: chmod 600 {self.path}"
            )
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            versions = {int(n): base64.b64decode(v, validate=True) for n, v in document["versions"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyServiceError(
                f"the master key file {self.path} cannot be read ({type(exc).__name__}); restore it "
                "from its backup: without it no personal data can be read"
            ) from exc
        if not versions or any(len(key) != DATA_KEY_BYTES for key in versions.values()):
            raise KeyServiceError(f"the master key file {self.path} holds no valid 32-byte key version")
        return versions

    def _write(self, versions: dict[int, bytes]) -> None:
        document = {"versions": {str(n): base64.b64encode(k).decode("ascii") for n, k in versions.items()}}
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def _stamp(self) -> tuple[int, int, int]:
        try:
            status = self.path.stat()
        except OSError as exc:
            raise KeyServiceError(
                f"the master key file {self.path} is gone ({exc.strerror}); restore it from its backup: "
                "without it no personal data can be read"
            ) from None
        return status.st_ino, status.st_mtime_ns, status.st_size

    def _refresh(self) -> bool:
        """Read the file again if it changed since (``keys rotate`` in another process); whether it did."""
        with self._lock:
            stamp = self._stamp()
            if stamp == self._seen:
                return False
            self._versions, self._seen = self._read(), stamp
            return True

    @property
    def newest(self) -> int:
        """The version that wraps."""
        return max(self._versions)

    @override
    def newest_version(self) -> int:
        self._refresh()
        return self.newest

    @override
    def create(self) -> bool:
        # The file is created on first use; this says whether this process's first use created it.
        return self._created

    def discard_created(self) -> None:
        """Remove the file this process created (it proved not to be the database's key)."""
        if self._created:
            self.path.unlink(missing_ok=True)
            self._created = False

    @override
    def wrap(self, keys: Sequence[bytes]) -> list[bytes]:
        self._refresh()  # one stat: new wraps move to a version rotated in by another process
        newest = self.newest
        prefix = f"local:v{newest}:".encode("ascii")
        return [prefix + seal(self._versions[newest], key, b"data-key") for key in keys]

    @override
    def version(self, wrapped: bytes) -> int:
        head, _, _ = wrapped.partition(b":v")
        number, _, _ = wrapped[len(head) + 2 :].partition(b":")
        if head != b"local" or not number.isdigit():
            raise KeyServiceError(f"a wrapped data key is not one of {self.name}'s")
        return int(number)

    @override
    def unwrap(self, wrapped: Sequence[bytes]) -> list[bytes]:
        keys = []
        for item in wrapped:
            number = self.version(item)
            master = self._versions.get(number)
            if master is None and self._refresh():  # a newer version rotated in by another process
                master = self._versions.get(number)
            if master is None:
                raise KeyServiceError(
                    f"a data key is wrapped by version {number} of {self.name}, which the file does not hold"
                )
            try:
                keys.append(unseal(master, item[len(f"local:v{number}:") :], b"data-key"))
            except SealBrokenError:
                raise KeyServiceError(
                    f"a data key does not open with version {number} of the master key file {self.path}: "
                    "this file is not the one that wrapped the database's data keys; restore that file "
                    "from its backup (or point SALESHUB_PRIVACY__KEY_FILE at it)"
                ) from None
        return keys

    @override
    def rewrap(self, wrapped: Sequence[bytes]) -> list[bytes]:
        return self.wrap(self.unwrap(wrapped))

    @override
    def rotate(self) -> int:
        with self._lock, self._exclusive():
            versions = self._read()  # as the file is now: another process may have rotated it
            versions[max(versions) + 1] = new_data_key()
            self._write(versions)
            self._versions, self._seen = versions, self._stamp()
            return max(versions)

    def __repr__(self) -> str:
        return f"LocalMasterKey({self.name!r}, versions={len(self._versions)})"


def master_key(settings: Settings, secrets: SecretStore | None) -> MasterKey:
    """The master key ``privacy.keys`` chooses: the local key file, or the transit key of the Vault
    that ``secrets`` (a Vault secret store) is logged in to, sharing its session."""
    privacy = settings.privacy
    if privacy.keys == "local":
        return LocalMasterKey(privacy.key_file or settings.database.data_dir / "master.key")
    from saleshub.platform.keys_vault import VaultTransitKey
    from saleshub.platform.vault import VaultSecretStore

    if settings.secrets.backend != "vault" or not isinstance(secrets, VaultSecretStore):
        raise ConfigurationError(
            "SALESHUB_PRIVACY__KEYS=vault wraps data keys with the transit engine of the Vault the "
            "secret store logs in to, so it needs SALESHUB_SECRETS__BACKEND=vault (it is "
            f"{settings.secrets.backend!r}); or set SALESHUB_PRIVACY__KEYS=local for a key file"
        )
    return VaultTransitKey(secrets.session, privacy.vault_transit_mount, privacy.vault_transit_key)


class DataKeyCache:
    """Unwrapped data keys by id, each for ``seconds`` after it was unwrapped; thread-safe.

    ``get`` may return a key past its time when ``stale_ok`` (the master key is unreachable: the
    hub keeps working on what it has for one more period, then refuses).
    """

    def __init__(
        self, seconds: float, *, limit: int = 200_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.limit = limit
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: dict[object, tuple[bytes, float]] = {}

    def get(self, key_id: object, *, stale_ok: bool = False) -> bytes | None:
        """The cached key, or ``None`` when absent or expired (twice the time when ``stale_ok``)."""
        entry = self._keys.get(key_id)
        if entry is None:
            return None
        age = self.clock() - entry[1]
        if age > (2 * self.seconds if stale_ok else self.seconds):
            return None
        return entry[0]

    def put(self, key_id: object, key: bytes) -> None:
        """Keep ``key`` for ``seconds`` from now."""
        with self._lock:
            if len(self._keys) >= self.limit:
                self._evict()
            self._keys[key_id] = (key, self.clock())

    def forget(self, key_ids: Sequence[object]) -> None:
        """Drop keys at once (an erasure in this process)."""
        with self._lock:
            for key_id in key_ids:
                self._keys.pop(key_id, None)

    def _evict(self) -> None:
        now = self.clock()
        expired = [k for k, (_, at) in self._keys.items() if now - at > 2 * self.seconds]
        for key_id in expired or list(self._keys)[: self.limit // 10]:
            del self._keys[key_id]

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:  # never the keys
        return f"DataKeyCache({len(self._keys)} keys, {self.seconds:g} s)"
