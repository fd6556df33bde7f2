"""Dynamic PostgreSQL credentials: a lease from Vault's database secrets engine, renewed and replaced.

``DatabaseLease.current()`` is what a new database connection logs in with. The keeper thread of the
store calls ``maintain()``: once half of the lease's lifetime has passed the lease is renewed; when
Vault will not extend it any further (its ``max_ttl``), or the session logged in again (a lease ends
with the token that created it), fresh credentials are read and become current while the old lease
still has at least half its lifetime left. The pool recycles connections after a
quarter of the lifetime (``recycle_seconds``), so every connection opened with the old credentials is
replaced long before Vault revokes them; nothing fails and nothing waits.

A lease can also end early: revoked in Vault (``bao lease revoke``), which drops its database user.
Renewal then fails ("lease not found") and fresh credentials are leased at once. The pool does not
wait for the next renewal to find out: when the database refuses the current user (a failed login,
or a privilege gone mid-transaction) it calls ``refused``, and the next round of the keeper (within
a second) checks the lease by renewing it, and replaces it if Vault no longer knows it. Until then
``problem()`` says why the database refuses the hub, for ``/health/ready``.

While Vault cannot be reached the current credentials stay in use (they are valid until the lease
ends, unless it was revoked) and ``maintain`` tries again on the next round: with dynamic
credentials, the hub outlasts a Vault outage for the remaining life of its lease.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from typing_extensions import override

from saleshub.errors import SalesHubError, SecretStoreError, SecretStoreUnavailableError
from saleshub.platform.secrets import Credentials, LeasedCredentials, LeaseInfo
from saleshub.platform.vault_session import VaultSession

__all__ = ["DatabaseLease"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Grant:
    lease_id: str
    credentials: Credentials
    expires: float  # monotonic
    expires_at: datetime
    renewable: bool
    generation: int  # the session's login that leased it: the lease ends with that token

    def __repr__(self) -> str:
        return f"_Grant(user={self.credentials.username!r}, expires_at={self.expires_at:%H:%M:%S})"


class DatabaseLease(LeasedCredentials):
    """Credentials of ``<mount>/creds/<role>``, kept valid for as long as the hub runs."""

    def __init__(self, session: VaultSession, mount: str, role: str) -> None:
        self.session, self.mount, self.role = session, mount, role
        self.path = f"{mount}/creds/{role}"
        self._lock = threading.Lock()
        self._retired: list[_Grant] = []
        self._refused: str | None = None  # why the database refused the current user, until checked
        self._failure: str | None = None  # why the last check or replacement failed
        self._grant = self._acquire()
        self.lifetime = max(self._grant.expires - time.monotonic(), 1.0)

    def _acquire(self) -> _Grant:
        def request() -> Any:
            database = self.session.client.secrets.database
            return database.generate_credentials(  # type: ignore[no-untyped-call]
                name=self.role, mount_point=self.mount
            )

        answer = self.session.call("reading database credentials from", self.path, request)
        duration = float(answer.get("lease_duration") or 0)
        data = answer["data"]
        grant = _Grant(
            lease_id=answer["lease_id"],
            credentials=Credentials(data["username"], SecretStr(data["password"])),
            expires=time.monotonic() + duration,
            expires_at=datetime.now(UTC) + timedelta(seconds=duration),
            renewable=bool(answer.get("renewable")),
            generation=self.session.generation,
        )
        log.info(
            "database credentials leased from %s for user %s until %s",
            self.path,
            grant.credentials.username,
            f"{grant.expires_at:%Y-%m-%d %H:%M:%S} UTC",
        )
        return grant

    @property
    def recycle_seconds(self) -> float:
        """How old a pooled connection may get: a quarter of the lease's or the token's lifetime.

        The token counts because Vault revokes a token's leases when the token ends: after a new
        login the credentials are replaced while the old token still has half its TTL left.
        """
        token = self.session.token_ttl
        lifetime = self.lifetime if token is None else min(self.lifetime, token)
        return max(lifetime / 4, 1.0)

    @override
    def current(self) -> Credentials:
        with self._lock:
            return self._grant.credentials

    @override
    def info(self) -> LeaseInfo:
        grant = self._grant
        return LeaseInfo(
            name="database/credentials",
            source=self.path,
            username=grant.credentials.username,
            expires_at=grant.expires_at,
            renewable=grant.renewable,
        )

    @override
    def refused(self, username: str, reason: str) -> None:
        with self._lock:
            if username == self._grant.credentials.username and self._refused is None:
                log.warning(
                    "the database refused the user %s leased from %s (%s); checking the lease now",
                    username,
                    self.path,
                    reason,
                )
                self._refused = reason

    @override
    def problem(self) -> str | None:
        reason = self._refused
        if reason is None:
            return None
        text = (
            f"the database refuses the user {self._grant.credentials.username} leased from {self.path} "
            f"({reason}); the lease is revoked or expired and is being replaced from Vault at "
            f"{self.session.address}"
        )
        failure = self._failure
        return f"{text}, which failed: {failure}" if failure else text

    def maintain(self) -> None:
        """Renew the lease after half its lifetime, or at once when the database refused it; replace
        it when Vault no longer extends it."""
        now = time.monotonic()
        self._retired = [grant for grant in self._retired if grant.expires > now]
        grant = self._grant
        relogged = grant.generation != self.session.generation
        refused = self._refused is not None
        if not refused and not relogged and grant.expires - now > self.lifetime / 2:
            return
        try:
            self._renew_or_replace(grant, relogged=relogged, refused=refused)
        except SalesHubError as exc:
            self._failure = str(exc)
            raise
        self._failure = None

    def _renew_or_replace(self, grant: _Grant, *, relogged: bool, refused: bool) -> None:
        revoked = False
        if (grant.renewable or refused) and not relogged:
            renew = functools.partial(
                self.session.client.sys.renew_lease, lease_id=grant.lease_id, increment=int(self.lifetime)
            )
            try:
                answer = self.session.call("renewing the lease of", self.path, renew)
            except SecretStoreUnavailableError:
                raise
            except SecretStoreError as exc:  # "lease not found", "lease expired": it is gone
                log.warning(
                    "the lease of %s for user %s cannot be renewed (%s); leasing fresh credentials now",
                    self.path,
                    grant.credentials.username,
                    exc,
                )
                revoked = True
            else:
                duration = float(answer.get("lease_duration") or 0)
                if duration > self.lifetime / 2 or (refused and duration > 0):
                    renewed = _Grant(
                        grant.lease_id,
                        grant.credentials,
                        time.monotonic() + duration,
                        datetime.now(UTC) + timedelta(seconds=duration),
                        bool(answer.get("renewable")),
                        grant.generation,
                    )
                    with self._lock:
                        self._grant = renewed
                        if refused:  # Vault still holds the lease: the refusal had another cause
                            log.warning(
                                "the lease of %s for user %s is valid; the database refused it for "
                                "another reason (%s)",
                                self.path,
                                grant.credentials.username,
                                self._refused,
                            )
                            self._refused = None
                    return
        fresh = self._acquire()
        with self._lock:
            if not revoked:  # a revoked lease is gone: nothing to give back at the end
                self._retired.append(self._grant)
            self._grant = fresh
            self._refused = None

    @override
    def close(self) -> None:
        for grant in [self._grant, *self._retired]:
            try:
                revoke = functools.partial(self.session.client.sys.revoke_lease, lease_id=grant.lease_id)
                self.session.call("revoking the lease of", self.path, revoke)
            except SalesHubError as exc:  # Vault revokes it at its end anyway
                log.warning("database lease of %s not revoked: %s", self.path, exc)
        self._retired = []
