"""The secret store: where webhook secrets (and later other credentials) come from.

``SecretStore`` is the interface; two backends exist now:

* ``EnvSecretStore``: ``SALESHUB_WEBHOOK_SECRET_<SYSTEM>`` holds one or more space-separated
  ``whsec_`` secrets (several during a rotation);
* ``FileSecretStore``: a YAML file ``{webhook_secrets: {pyxis: [whsec_…, …]}}``, re-read when it
  changes, so a rotation needs no restart.

Secrets are decoded once and cached as key bytes; they are never logged or put in messages.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

import yaml
from typing_extensions import override

from saleshub.errors import ConfigurationError
from saleshub.platform.settings import Settings
from saleshub.receive.signatures import decode_secret

__all__ = ["EnvSecretStore", "FileSecretStore", "SecretStore", "secret_store_from_settings"]


class SecretStore(ABC):
    """Gives the webhook secrets of a sales system, as key bytes."""

    @abstractmethod
    def webhook_keys(self, system: str) -> list[bytes]:
        """Every secret currently valid for ``system`` (empty if none is configured)."""


def _decode_all(values: list[str], where: str) -> list[bytes]:
    keys: list[bytes] = []
    for index, value in enumerate(values, start=1):
        try:
            keys.append(decode_secret(value))
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}, secret {index}: {exc}") from None
    return keys


class EnvSecretStore(SecretStore):
    """Secrets from ``SALESHUB_WEBHOOK_SECRET_<SYSTEM>`` environment variables."""

    PREFIX = "SALESHUB_WEBHOOK_SECRET_"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._decoded: dict[str, tuple[str, list[bytes]]] = {}  # variable → (its value, keys)

    @override
    def webhook_keys(self, system: str) -> list[bytes]:
        name = self.PREFIX + system.upper()
        value = self._environ.get(name, "")
        cached = self._decoded.get(name)
        if cached is None or cached[0] != value:
            cached = (value, _decode_all(value.split(), name))
            self._decoded[name] = cached
        return list(cached[1])


class FileSecretStore(SecretStore):
    """Secrets from a YAML file, re-read whenever its modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: int | None = None
        self._keys: dict[str, list[bytes]] = {}

    def _load(self) -> None:
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            raise ConfigurationError(f"secrets file {self.path} does not exist") from None
        if stamp == self._stamp:
            return
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"secrets file {self.path} is not valid YAML: {exc}") from None
        section = data.get("webhook_secrets", {}) if isinstance(data, dict) else None
        if not isinstance(section, dict):
            raise ConfigurationError(f"{self.path}: webhook_secrets must map system codes to lists")
        keys: dict[str, list[bytes]] = {}
        for system, values in section.items():
            listed = [values] if isinstance(values, str) else values
            if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
                raise ConfigurationError(f"{self.path}: webhook_secrets.{system} must be a list of secrets")
            keys[str(system)] = _decode_all(listed, f"{self.path}: webhook_secrets.{system}")
        self._keys, self._stamp = keys, stamp

    @override
    def webhook_keys(self, system: str) -> list[bytes]:
        self._load()
        return list(self._keys.get(system, []))


def secret_store_from_settings(settings: Settings) -> SecretStore:
    """The backend the settings choose."""
    if settings.secrets_backend == "file":
        if settings.secrets_file is None:
            raise ConfigurationError("SALESHUB_SECRETS_BACKEND=file needs SALESHUB_SECRETS_FILE")
        return FileSecretStore(settings.secrets_file)
    return EnvSecretStore()
