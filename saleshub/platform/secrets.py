"""The secret store: named secrets for webhooks, the database, Kafka and the source APIs.

A secret has a name made of ``/``-separated parts:

=================================  ==============================================================
``webhook/<system>``               the system's ``whsec_`` webhook secrets (several during a rotation)
``database/credentials/username``  user and password set on ``database.url`` (which then needs
``database/credentials/password``  no password of its own)
``kafka/sasl/username``            ``sasl.username`` / ``sasl.password`` of every Kafka client
``kafka/sasl/password``
``source/<system>/username``       credentials of a polled source API (the ERP …)
``source/<system>/password``
=================================  ==============================================================

``SecretStore`` is the port; three backends exist (Vault in ``saleshub.platform.vault``, imported
only when chosen):

* ``EnvSecretStore``: the name in capitals with ``_`` for ``/``, after ``SALESHUB_SECRET_``:
  ``SALESHUB_SECRET_WEBHOOK_PYXIS="whsec_… whsec_…"`` (space-separated),
  ``SALESHUB_SECRET_DATABASE_CREDENTIALS_PASSWORD``, ``SALESHUB_SECRET_KAFKA_SASL_USERNAME`` …;
* ``FileSecretStore``: a YAML file whose nesting follows the name, re-read when it changes (a
  rotation needs no restart)::

      webhook:
        pyxis: [whsec_…, whsec_…]
      database:
        credentials: {username: hub, password: …}
      kafka:
        sasl: {username: …, password: …}

* ``VaultSecretStore``: KV v2 secrets under a path prefix, cached and re-read, and dynamic database
  credentials from Vault's database secrets engine (``leased_credentials``).

With no backend chosen (``SALESHUB_SECRETS__BACKEND`` unset) and no ``SALESHUB_SECRET_WEBHOOK_*``
variable, the local secrets file ``<data_dir>/secrets.yaml`` (the one ``scripts/serve.sh`` makes) is
used when it exists (``local_secrets_file``), so ``saleshub serve``, ``status`` and ``webhooks send``
find it without ``scripts/serve.sh``; a backend set explicitly always wins.

Values are ``SecretStr``: they show as ``**********`` in any ``repr``, and no message of this module
contains one.
"""

from __future__ import annotations

import base64
import binascii
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml
from pydantic import SecretStr
from typing_extensions import override

from saleshub.errors import ConfigurationError, MissingSecretError, SecretStoreError
from saleshub.platform.settings import SECRET_ENV_PREFIX, Settings

__all__ = [
    "LOCAL_SECRETS_NAME",
    "SECRET_PREFIX",
    "Credentials",
    "EnvSecretStore",
    "FileSecretStore",
    "LeaseInfo",
    "LeasedCredentials",
    "SecretStore",
    "StoreHealth",
    "decode_secret",
    "local_secrets_file",
    "secret_store_from_settings",
]

#: The local secrets file in the data directory (made by ``scripts/serve.sh``).
LOCAL_SECRETS_NAME = "secrets.yaml"

SECRET_PREFIX = "whsec_"


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret; ``ConfigurationError`` if it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ConfigurationError(f"a webhook secret must start with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ConfigurationError("a webhook secret must be whsec_ followed by base64") from None
    if len(key) < 24:
        raise ConfigurationError("a webhook secret must hold at least 24 random bytes")
    return key


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name and its password (the password masked in any ``repr``)."""

    username: str
    password: SecretStr


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """What an operator sees of a lease: which credentials, from where, valid until when."""

    name: str
    source: str
    username: str
    expires_at: datetime
    renewable: bool


class LeasedCredentials(ABC):
    """Credentials that change while the hub runs (a lease): ask for the current ones every time."""

    #: Seconds a lease lasts when granted.
    lifetime: float

    @abstractmethod
    def current(self) -> Credentials:
        """The credentials to log in with now."""

    @property
    @abstractmethod
    def recycle_seconds(self) -> float:
        """How long a connection opened with them may be kept (well inside a lease's lifetime)."""

    @abstractmethod
    def info(self) -> LeaseInfo:
        """The current lease, for ``saleshub status``."""

    @abstractmethod
    def close(self) -> None:
        """Give the lease back."""

    def refused(self, username: str, reason: str) -> None:  # noqa: B027  (a hook: static leases ignore it)
        """The database refused ``username`` (a login, or a privilege mid-transaction): check the lease.

        Called by the connection pool; the lease is checked and, if Vault no longer knows it
        (revoked), replaced at once instead of at its next renewal.
        """

    def problem(self) -> str | None:
        """Why the current credentials do not work, while they do not; ``None`` when they are fine."""
        return None


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """Whether the store can serve secrets now, in one line an operator can act on."""

    available: bool
    detail: str
    leases: tuple[LeaseInfo, ...] = field(default=())


class SecretStore(ABC):
    """Named secrets; a backend only says how to read the values of one name."""

    def __init__(self) -> None:
        self._webhook_keys: dict[str, tuple[tuple[str, ...], list[bytes]]] = {}

    @abstractmethod
    def values(self, name: str) -> tuple[SecretStr, ...]:
        """Every value stored under ``name`` (empty if none); ``SecretStoreError`` if unreadable."""

    @abstractmethod
    def where(self, name: str) -> str:
        """Where an operator sets ``name`` (for messages): a variable, a file and key, a path."""

    def find(self, name: str) -> SecretStr | None:
        """The secret ``name``, or ``None`` when it is not configured."""
        found = self.values(name)
        if len(found) > 1:
            raise SecretStoreError(f"secret {name!r} in {self.where(name)} must be one value, not a list")
        return found[0] if found else None

    def get(self, name: str) -> SecretStr:
        """The secret ``name``; ``MissingSecretError`` says where to set it when it is absent."""
        found = self.find(name)
        if found is None:
            raise MissingSecretError(name, self.where(name))
        return found

    def credentials(self, name: str) -> Credentials | None:
        """``<name>/username`` and ``<name>/password`` together, or ``None`` when neither is set."""
        username, password = self.find(f"{name}/username"), self.find(f"{name}/password")
        if username is None and password is None:
            return None
        if username is None or password is None:
            missing = f"{name}/username" if username is None else f"{name}/password"
            raise MissingSecretError(missing, self.where(missing))
        return Credentials(username.get_secret_value(), password)

    def leased_credentials(self, name: str) -> LeasedCredentials | None:
        """Credentials ``name`` that come with a lease (dynamic), or ``None`` when they are static."""
        return None

    def health(self) -> StoreHealth:
        """Whether secrets can be read now (a backend that reads a file or variables always can)."""
        return StoreHealth(True, f"{self!r}")

    def close(self) -> None:  # noqa: B027  (a hook with a default: most backends hold nothing)
        """Release what the store holds (threads, leases); the default holds nothing."""

    def webhook_keys(self, system: str) -> list[bytes]:
        """The key bytes of every webhook secret of ``system`` (empty if none is configured)."""
        name = f"webhook/{system}"
        raw = tuple(value.get_secret_value() for value in self.values(name))
        cached = self._webhook_keys.get(name)
        if cached is None or cached[0] != raw:
            keys: list[bytes] = []
            for index, value in enumerate(raw, start=1):
                try:
                    keys.append(decode_secret(value))
                except ConfigurationError as exc:
                    raise SecretStoreError(f"{self.where(name)}, secret {index}: {exc}") from None
            cached = (raw, keys)
            self._webhook_keys[name] = cached
        return list(cached[1])


class EnvSecretStore(SecretStore):
    """Secrets from ``SALESHUB_SECRET_<NAME>`` environment variables (values space-separated)."""

    PREFIX = SECRET_ENV_PREFIX

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self._environ = os.environ if environ is None else environ

    @classmethod
    def variable(cls, name: str) -> str:
        """The environment variable of the secret ``name`` (``webhook/pyxis`` → ``…_WEBHOOK_PYXIS``)."""
        return cls.PREFIX + name.replace("/", "_").upper()

    @override
    def values(self, name: str) -> tuple[SecretStr, ...]:
        return tuple(SecretStr(part) for part in self._environ.get(self.variable(name), "").split())

    @override
    def where(self, name: str) -> str:
        return f"the environment variable {self.variable(name)}"

    def __repr__(self) -> str:
        return "EnvSecretStore()"


class FileSecretStore(SecretStore):
    """Secrets from a YAML file nested like the names, re-read whenever its modification time changes."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._stamp: int | None = None
        self._tree: dict[str, object] = {}

    def _load(self) -> dict[str, object]:
        try:
            stamp = self.path.stat().st_mtime_ns
        except OSError as exc:
            raise SecretStoreError(f"secrets file {self.path} cannot be read: {exc.strerror}") from None
        if stamp == self._stamp:
            return self._tree
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except yaml.MarkedYAMLError as exc:
            # The exception's own text quotes the offending line, which may hold a secret.
            mark = exc.problem_mark or exc.context_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise SecretStoreError(f"secrets file {self.path} is not valid YAML{where}") from None
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            raise SecretStoreError(f"secrets file {self.path} is not readable UTF-8 YAML") from None
        if not isinstance(data, dict):
            raise SecretStoreError(f"secrets file {self.path} must be a mapping (webhook: {{pyxis: […]}})")
        if "webhook_secrets" in data:
            raise SecretStoreError(
                f"secrets file {self.path}: the key webhook_secrets is now called webhook "
                "(webhook: {pyxis: [whsec_…]})"
            )
        self._tree, self._stamp = data, stamp
        return data

    @override
    def values(self, name: str) -> tuple[SecretStr, ...]:
        node: object = self._load()
        for part in name.split("/"):
            if not isinstance(node, dict):
                return ()
            node = node.get(part)
        if node is None:
            return ()
        listed = node if isinstance(node, list) else [node]
        if not all(isinstance(value, str | int) for value in listed):
            raise SecretStoreError(f"{self.where(name)} must be a text value or a list of them")
        return tuple(SecretStr(str(value)) for value in listed)

    @override
    def where(self, name: str) -> str:
        return f"secrets file {self.path}, key {name.replace('/', '.')}"

    def __repr__(self) -> str:
        return f"FileSecretStore({self.path})"


def local_secrets_file(settings: Settings, environ: Mapping[str, str] | None = None) -> Path | None:
    """``<data_dir>/secrets.yaml`` when no backend is chosen, no webhook secret is in the environment
    and the file exists; else ``None``."""
    if "backend" in settings.secrets.model_fields_set:
        return None
    webhook_variable = EnvSecretStore.variable("webhook/")
    if any(name.startswith(webhook_variable) for name in (os.environ if environ is None else environ)):
        return None
    path = settings.database.data_dir / LOCAL_SECRETS_NAME
    return path if path.is_file() else None


def secret_store_from_settings(settings: Settings, *, wait: bool = True) -> SecretStore:
    """The backend the settings choose (Vault: logged in, retrying while Vault is unavailable).

    With none chosen, the local secrets file when there is one (``local_secrets_file``).
    ``wait=False`` (``saleshub status``): Vault is tried once, and an unavailable Vault gives a store
    that says so at once instead of retrying for ``vault_startup_seconds``.
    """
    if settings.secrets.backend == "vault":
        try:
            from saleshub.platform.vault import VaultSecretStore
        except ImportError as exc:
            raise ConfigurationError(
                f"SALESHUB_SECRETS__BACKEND=vault needs the hvac package ({exc.name} is missing): "
                "pip install hvac"
            ) from None
        if not wait:
            return VaultSecretStore.probe(settings.secrets)
        return VaultSecretStore.connect(settings.secrets)
    if settings.secrets.backend == "file":
        if settings.secrets.file is None:
            raise ConfigurationError("SALESHUB_SECRETS__BACKEND=file needs SALESHUB_SECRETS__FILE")
        return FileSecretStore(settings.secrets.file)
    local = local_secrets_file(settings)
    return EnvSecretStore() if local is None else FileSecretStore(local)
