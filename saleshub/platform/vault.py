"""The Vault backend of the secret store (HashiCorp Vault or OpenBao, through hvac).

Secrets are KV v2 secrets under ``<vault_path>`` in the ``<vault_kv_mount>`` engine; a name is a path
below it, or a path and one key of the secret there:

=================================  =============================================================
``webhook/<system>``               every value of ``<path>/webhook/<system>`` is an active signing
                                   secret (``current=whsec_… next=whsec_…`` during a rotation)
``kafka/sasl``                     keys ``username`` and ``password`` of ``<path>/kafka/sasl``
``source/<system>``                keys ``username`` and ``password`` of ``<path>/source/<system>``
``database/credentials``           keys ``username`` and ``password`` of
                                   ``<path>/database/credentials``, unless ``vault_database_role``
                                   leases them from the database secrets engine (``vault_lease``)
=================================  =============================================================

Values are cached and read again every ``vault_cache_seconds`` by a keeper thread, which also renews
the token and the database lease; a request never waits for Vault except for the first read of a
path. A rotated webhook secret is therefore accepted, and a removed one refused, within that time,
without a restart. While Vault is unreachable the cached values are served for
``vault_outage_grace_seconds`` after their last successful read; past that, reading them raises
``SecretStoreUnavailableError`` (retriable: a webhook gets 503). At start, ``connect`` retries the
login with exponential backoff for ``vault_startup_seconds`` and then fails with the reason;
``probe`` (for ``saleshub status``) tries once.

A path that held a secret and then reads as "not found" is taken for a Vault that lost it (restored
from an empty or old backup, a mount recreated), not for a withdrawal: it raises
``SecretStoreUnavailableError`` (a webhook gets 503 with ``Retry-After``, which senders retry, where
"no secret" would be a 401, which they do not) until the path holds a secret again or the hub
restarts. A key removed from a secret that still exists is a withdrawal, refused within the cache
time; so is a secret written with no keys.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)
from typing_extensions import override

from saleshub.errors import SalesHubError, SecretStoreError, SecretStoreUnavailableError
from saleshub.platform.secrets import Credentials, LeasedCredentials, SecretStore, StoreHealth
from saleshub.platform.settings import SecretsSettings
from saleshub.platform.vault_lease import DatabaseLease
from saleshub.platform.vault_session import VaultSession

__all__ = ["VaultSecretStore"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One KV path as last read: its data (``None``: absent) or the refusal, and when.

    ``vanished`` is set when a path that held a secret reads as absent: when it last held one.
    """

    data: dict[str, Any] | None
    refusal: str | None
    read_at: float  # monotonic
    vanished: datetime | None = None


def _values(data: dict[str, Any]) -> tuple[SecretStr, ...]:
    found: list[SecretStr] = []
    for key in sorted(data):
        value = data[key]
        items = value if isinstance(value, list) else str(value).split()
        found.extend(SecretStr(str(item)) for item in items)
    return tuple(found)


class VaultSecretStore(SecretStore):
    """Secrets from Vault's KV v2 engine and leases from its database engine (see the module)."""

    def __init__(self, config: SecretsSettings, session: VaultSession | None = None) -> None:
        super().__init__()
        self.config = config
        self.session = session if session is not None else VaultSession(config)
        self._cache: dict[str, _Entry] = {}
        self._leases: dict[str, DatabaseLease] = {}
        self._lock = threading.Lock()
        self._unreachable_since: float | None = None
        self._last_problem = ""
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None

    @classmethod
    def connect(cls, config: SecretsSettings) -> VaultSecretStore:
        """A logged-in store with its keeper running; retries while Vault is unavailable."""
        store = cls(config)
        store.retrying(store.session.login, "logging in")
        store.start()
        return store

    @classmethod
    def probe(cls, config: SecretsSettings) -> VaultSecretStore:
        """A store for a one-shot look (``saleshub status``): one login attempt, no retries, no keeper.

        When Vault cannot be reached or refuses the login, the store is returned anyway, not logged
        in: ``health()`` says why, and every read fails at once with that reason instead of waiting
        for Vault again.
        """
        quick = config.model_copy(
            update={"vault_startup_seconds": 0, "vault_timeout_seconds": min(config.vault_timeout_seconds, 3)}
        )
        store = cls(quick)
        try:
            store.session.login()
        except SecretStoreError as exc:  # refused: said by health() and by every read
            store._last_problem = str(exc)
        except SecretStoreUnavailableError as exc:
            store._last_problem, store._unreachable_since = str(exc), time.monotonic()
        return store

    def retrying(self, attempt: Any, what: str) -> Any:
        """``attempt()``, retried with backoff for ``vault_startup_seconds`` while Vault is unavailable."""

        def report(state: RetryCallState) -> None:
            wait = state.next_action.sleep if state.next_action else 0
            exc = state.outcome.exception() if state.outcome else None
            log.warning("%s; retrying in %.1f s (attempt %d)", exc, wait, state.attempt_number)

        retrying = Retrying(
            stop=stop_after_delay(self.config.vault_startup_seconds),
            wait=wait_exponential(multiplier=0.5, max=10),
            retry=retry_if_exception_type(SecretStoreUnavailableError),
            before_sleep=report,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except SecretStoreUnavailableError as exc:
            raise SecretStoreUnavailableError(
                f"{exc}; gave up {what} after {self.config.vault_startup_seconds:g} s "
                "(SALESHUB_SECRETS__VAULT_STARTUP_SECONDS)"
            ) from None

    def start(self) -> None:
        """Start the keeper thread (token and lease renewal, re-reading cached secrets)."""
        if self._keeper is None:
            self._keeper = threading.Thread(target=self._keep, name="vault-keeper", daemon=True)
            self._keeper.start()

    # -- reading -----------------------------------------------------------------------------------

    def _kv_path(self, path: str) -> str:
        return f"{self.config.vault_path.strip('/')}/{path}"

    def _fetch(self, path: str) -> _Entry:
        full = self._kv_path(path)

        def request() -> Any:
            return self.session.client.secrets.kv.v2.read_secret_version(
                path=full, mount_point=self.config.vault_kv_mount, raise_on_deleted_version=True
            )

        try:
            answer = self.session.find("reading", f"{self.config.vault_kv_mount}/{full}", request)
        except SecretStoreUnavailableError:
            raise
        except SecretStoreError as exc:  # denied: kept, so each request does not ask again
            entry = _Entry(None, str(exc), time.monotonic())
        else:
            data = None if answer is None else dict(answer["data"]["data"] or {})
            vanished = None
            if data is None:
                before = self._cache.get(path)
                if before is not None and before.vanished is not None:
                    vanished = before.vanished
                elif before is not None and before.data is not None:
                    vanished = datetime.now(UTC)
                    log.warning(
                        "%s held a secret and now reads as not found: taken for a Vault that lost it "
                        "(a restore, a recreated mount); requests that need it get 503 until it is "
                        "back or the hub restarts",
                        self.where(path),
                    )
            entry = _Entry(data, None, time.monotonic(), vanished)
        with self._lock:
            self._cache[path] = entry
        return entry

    def _read(self, path: str) -> dict[str, Any] | None:
        entry = self._cache.get(path)
        limit = self.config.vault_cache_seconds + self.config.vault_outage_grace_seconds
        if entry is None or time.monotonic() - entry.read_at > limit:
            if not self.session.logged_in and self._last_problem:  # a probe that could not log in
                raise SecretStoreUnavailableError(f"{self._last_problem}; {self.where(path)} not read")
            if self._unreachable_since is not None:
                # The keeper knows Vault is down: answer now instead of making a request wait for a
                # timeout; the keeper fills the cache again as soon as Vault answers.
                raise SecretStoreUnavailableError(
                    f"{self._last_problem}; no cached value of {self.where(path)} younger than "
                    f"{limit:g} s (vault_cache_seconds + vault_outage_grace_seconds)"
                )
            entry = self._fetch(path)
        if entry.refusal is not None:
            raise SecretStoreError(entry.refusal)
        if entry.vanished is not None:
            raise SecretStoreUnavailableError(self._vanished(path, entry.vanished))
        return entry.data

    def _vanished(self, path: str, since: datetime) -> str:
        return (
            f"{self.where(path)} held a secret until {since:%Y-%m-%d %H:%M:%S} UTC and now reads as "
            "not found (Vault restored or its mount recreated?); write it again"
        )

    @override
    def values(self, name: str) -> tuple[SecretStr, ...]:
        data = self._read(name)
        if data is not None:
            return _values(data)
        parent, _, key = name.rpartition("/")
        if not parent:
            return ()
        data = self._read(parent)
        if data is None or key not in data:
            return ()
        return _values({key: data[key]})

    @override
    def credentials(self, name: str) -> Credentials | None:
        # Both from one read of one version, so a rotation never pairs an old user with a new password.
        if name == "database/credentials" and self.config.vault_database_role:
            return self._database_lease().current()
        data = self._read(name)
        if data is None:
            return None
        username, password = data.get("username"), data.get("password")
        if username is None or password is None:
            missing = f"{name}/username" if username is None else f"{name}/password"
            raise SecretStoreError(f"{self.where(name)} lacks the key {missing.rpartition('/')[2]!r}")
        return Credentials(str(username), SecretStr(str(password)))

    @override
    def where(self, name: str) -> str:
        full = f"{self.config.vault_kv_mount}/{self._kv_path(name)}"
        return f"Vault at {self.session.address}, KV v2 path {full} (read with {self.session.login_method})"

    @override
    def leased_credentials(self, name: str) -> LeasedCredentials | None:
        if name != "database/credentials" or not self.config.vault_database_role:
            return None
        return self._database_lease()

    def _database_lease(self) -> DatabaseLease:
        with self._lock:
            lease = self._leases.get("database/credentials")
        if lease is None and not self.session.logged_in and self._last_problem:  # a probe that failed
            raise SecretStoreUnavailableError(
                f"{self._last_problem}; no lease of {self.config.vault_database_mount}/creds/"
                f"{self.config.vault_database_role} for database/credentials"
            )
        if lease is None:
            role = self.config.vault_database_role or ""

            def create() -> DatabaseLease:
                return DatabaseLease(self.session, self.config.vault_database_mount, role)

            lease = self.retrying(create, "reading database credentials")
            with self._lock:
                lease = self._leases.setdefault("database/credentials", lease)
        return lease

    # -- keeping -----------------------------------------------------------------------------------

    def _keep(self) -> None:
        tick = min(1.0, self.config.vault_cache_seconds / 4)
        while not self._stop.wait(tick):
            try:
                self.maintain()
            except Exception:  # a bug must not end the keeper; the next round tries again
                log.exception("the Vault keeper failed; trying again")

    def maintain(self) -> None:
        """One round of the keeper: renew the token and leases, re-read what is due."""
        try:
            self.session.maintain()
            for lease in list(self._leases.values()):
                lease.maintain()
            now = time.monotonic()
            for path, entry in list(self._cache.items()):
                if now - entry.read_at >= self.config.vault_cache_seconds:
                    self._fetch(path)
        except SalesHubError as exc:
            self._problem(exc)
            return
        if self._unreachable_since is not None:
            log.warning("Vault at %s answers again; secrets are current", self.session.address)
        self._unreachable_since, self._last_problem = None, ""

    def _problem(self, exc: SalesHubError) -> None:
        message = str(exc)
        if message != self._last_problem:
            log.warning("%s; serving cached secrets meanwhile", message)
        if self._unreachable_since is None and isinstance(exc, SecretStoreUnavailableError):
            self._unreachable_since = time.monotonic()
        self._last_problem = message

    @override
    def health(self) -> StoreHealth:
        leases = tuple(lease.info() for lease in self._leases.values())
        where = f"Vault at {self.session.address} ({self.session.login_method})"
        if not self.session.logged_in:
            return StoreHealth(False, f"{where}: not logged in: {self._last_problem}", leases)
        lost = [
            self._vanished(path, entry.vanished)
            for path, entry in list(self._cache.items())
            if entry.vanished
        ]
        lost += [problem for lease in list(self._leases.values()) if (problem := lease.problem())]
        if lost:
            return StoreHealth(False, f"{where}: {'; '.join(lost)}", leases)
        if self._unreachable_since is None:
            token = self.session.token_expires_in
            ttl = "a token that does not expire" if token is None else f"token valid {token:.0f} s more"
            return StoreHealth(True, f"{where}: connected, {ttl}", leases)
        now = time.monotonic()
        down = now - self._unreachable_since
        limit = self.config.vault_cache_seconds + self.config.vault_outage_grace_seconds
        oldest = max((now - entry.read_at for entry in list(self._cache.values())), default=0.0)
        available = oldest <= limit
        state = "serving cached secrets" if available else "cached secrets past their outage grace"
        return StoreHealth(
            available, f"{where}: unreachable for {down:.0f} s, {state}: {self._last_problem}", leases
        )

    @override
    def close(self) -> None:
        self._stop.set()
        if self._keeper is not None:
            self._keeper.join(timeout=10)
        for lease in self._leases.values():
            lease.close()
        self._leases.clear()
        self.session.close()

    def __repr__(self) -> str:
        return f"VaultSecretStore({self.session.address}, {self.session.login_method})"
