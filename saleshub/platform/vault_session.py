"""One logged-in connection to Vault: login by token, AppRole or Kubernetes, token renewal, and hvac's
errors translated into the hub's error tree.

Every call to Vault goes through ``VaultSession.call``, the one place where hvac's and requests'
exceptions become the hub's: an unreachable, sealed or failing Vault is
``SecretStoreUnavailableError`` (retriable); a refusal (403, a bad login) is ``SecretStoreError``
naming the path and the auth method; a missing path is ``None`` when the caller allows it. Messages
carry Vault's own error words, never a token, secret id or secret value.

The token is renewed once half its time has passed (``maintain``, called by the store's keeper
thread); when it can no longer be renewed (its maximum TTL, or revoked) the session logs in again:
AppRole reads its secret id and Kubernetes its service account token anew from their files, and the
token method re-reads its file (a Vault Agent sink rotates it). Vault revokes the leases a token
created when that token ends, so a new login makes the database lease move to credentials leased
by the new token (``generation``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests
from pydantic import SecretStr

from saleshub.errors import ConfigurationError, SecretStoreError, SecretStoreUnavailableError
from saleshub.platform.settings import SecretsSettings

__all__ = ["VaultSession"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_UNAVAILABLE = (
    hvac.exceptions.VaultDown,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
    hvac.exceptions.RateLimitExceeded,
    hvac.exceptions.VaultNotInitialized,
)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.Timeout):
        return "no answer in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed (check SALESHUB_SECRETS__VAULT_CA_FILE)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection refused or reset"
    errors = getattr(exc, "errors", None)
    text = "; ".join(str(error) for error in errors) if errors else type(exc).__name__
    return " ".join(text.split())[:200]


def _read_file(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(f"{what} file {path} cannot be read: {exc.strerror}") from None


class VaultSession:
    """An hvac client logged in with the configured method, its token kept alive."""

    def __init__(self, config: SecretsSettings) -> None:
        if not config.vault_address:
            raise ConfigurationError(
                "SALESHUB_SECRETS__BACKEND=vault needs SALESHUB_SECRETS__VAULT_ADDRESS (https://host:8200)"
            )
        self.config = config
        self.address = config.vault_address
        self.method = config.vault_auth
        self.mount = config.vault_auth_mount or {"token": "token"}.get(self.method, self.method)
        verify: bool | str = str(config.vault_ca_file) if config.vault_ca_file else True
        self.client = hvac.Client(
            url=self.address,
            verify=verify,
            timeout=config.vault_timeout_seconds,
            namespace=config.vault_namespace,
        )
        self._lock = threading.Lock()
        self._token_ttl = 0.0
        self._token_expires: float | None = None  # monotonic; None: the token does not expire
        self._renewable = False
        self.logged_in = False
        #: Counts logins: a lease belongs to the token that created it and ends with that token.
        self.generation = 0

    @property
    def login_method(self) -> str:
        """The auth method as messages name it (``approle at auth/approle``)."""
        return f"{self.method} auth at auth/{self.mount}" if self.method != "token" else "token auth"

    @contextmanager
    def _translated(self, what: str, path: str | None) -> Iterator[None]:
        where = f" {path}" if path else ""
        try:
            yield
        except (requests.exceptions.RequestException, *_UNAVAILABLE) as exc:
            raise SecretStoreUnavailableError(
                f"Vault at {self.address} is unavailable ({_reason(exc)}) while {what}{where}"
            ) from None
        except hvac.exceptions.Forbidden as exc:
            raise SecretStoreError(
                f"Vault refused {what}{where} to the hub's {self.login_method} ({_reason(exc)}); the "
                "token's policy must allow it"
            ) from None
        except hvac.exceptions.VaultError as exc:
            raise SecretStoreError(
                f"Vault refused {what}{where} with {self.login_method} ({_reason(exc)})"
            ) from None

    def call(self, what: str, path: str | None, request: Callable[[], _T]) -> _T:
        """``request()`` with hvac's errors translated (``what`` and ``path`` name it in messages)."""
        with self._translated(what, path):
            return request()

    def find(self, what: str, path: str, request: Callable[[], _T]) -> _T | None:
        """Like ``call``, but ``None`` when the path does not exist (404)."""
        with self._translated(what, path):
            try:
                return request()
            except hvac.exceptions.InvalidPath:
                return None

    # -- login and renewal ------------------------------------------------------------------------

    def login(self) -> None:
        """Log in with the configured method (a fresh token); raises a translated error."""
        config = self.config
        with self._lock:
            if self.method == "token":
                token = self._static_token()
                self.client.token = token.get_secret_value()
                data = self.call("looking up the token", None, self.client.auth.token.lookup_self)["data"]
                ttl, renewable = float(data.get("ttl") or 0), bool(data.get("renewable"))
            else:
                if self.method == "approle":
                    if not config.vault_role_id:
                        raise ConfigurationError("vault_auth=approle needs SALESHUB_SECRETS__VAULT_ROLE_ID")
                    secret_id = self._approle_secret_id()

                    def request() -> Any:
                        return self.client.auth.approle.login(
                            role_id=config.vault_role_id,
                            secret_id=secret_id.get_secret_value(),
                            mount_point=self.mount,
                        )
                else:
                    if not config.vault_role:
                        raise ConfigurationError("vault_auth=kubernetes needs SALESHUB_SECRETS__VAULT_ROLE")
                    jwt = _read_file(config.vault_service_account_token_file, "service account token")

                    def request() -> Any:
                        return self.client.auth.kubernetes.login(
                            role=config.vault_role, jwt=jwt, mount_point=self.mount
                        )

                auth = self.call("logging in", f"auth/{self.mount}/login", request)["auth"]
                ttl, renewable = float(auth.get("lease_duration") or 0), bool(auth.get("renewable"))
            self._set_ttl(ttl, renewable)
            self.logged_in = True
            self.generation += 1

    def _static_token(self) -> SecretStr:
        config = self.config
        if config.vault_token_file is not None:
            return SecretStr(_read_file(config.vault_token_file, "Vault token"))
        if config.vault_token is not None:
            return config.vault_token
        raise ConfigurationError(
            "vault_auth=token needs SALESHUB_SECRETS__VAULT_TOKEN_FILE (or, in development, "
            "SALESHUB_SECRETS__VAULT_TOKEN)"
        )

    def _approle_secret_id(self) -> SecretStr:
        config = self.config
        if config.vault_secret_id_file is not None:
            return SecretStr(_read_file(config.vault_secret_id_file, "AppRole secret id"))
        if config.vault_secret_id is not None:
            return config.vault_secret_id
        raise ConfigurationError(
            "vault_auth=approle needs SALESHUB_SECRETS__VAULT_SECRET_ID_FILE (or, in development, "
            "SALESHUB_SECRETS__VAULT_SECRET_ID)"
        )

    def _set_ttl(self, ttl: float, renewable: bool) -> None:
        self._token_ttl, self._renewable = ttl, renewable
        self._token_expires = time.monotonic() + ttl if ttl > 0 else None

    @property
    def token_ttl(self) -> float | None:
        """The TTL the token was granted with (``None``: it does not expire)."""
        return self._token_ttl if self._token_ttl > 0 else None

    @property
    def token_expires_in(self) -> float | None:
        """Seconds left on the token (``None``: it does not expire)."""
        return None if self._token_expires is None else self._token_expires - time.monotonic()

    def maintain(self) -> None:
        """Renew the token once half its TTL has passed; log in again when it cannot be renewed."""
        if not self.logged_in:
            self.login()
            return
        left = self.token_expires_in
        if left is None or left > self._token_ttl / 2:
            return
        if self._renewable:
            try:
                with self._lock:
                    auth = self.call("renewing the token", None, self.client.auth.token.renew_self)["auth"]
                ttl = float(auth.get("lease_duration") or 0)
            except SecretStoreError as exc:  # revoked or expired: a new login follows
                log.warning("Vault token renewal refused (%s); logging in again", exc)
                ttl = 0.0
            if ttl > self._token_ttl / 2:
                self._set_ttl(ttl, self._renewable)
                return
        log.info("the Vault token reaches its maximum TTL; logging in again with %s", self.login_method)
        self.login()

    def close(self) -> None:
        """Drop the HTTP connections (the token is left to expire: other processes may share it)."""
        self.client.adapter.close()
