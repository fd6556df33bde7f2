"""Dynamic PostgreSQL credentials: a lease from Vault's database secrets engine, renewed and replaced.

``DatabaseLease.current()`` is what a new database connection logs in with. The keeper thread of the
store calls ``maintain()``: once half of the lease's lifetime has passed the lease is renewed; when
Vault will not extend it any further (its ``max_ttl``), or the session logged in again (a lease ends
with the token that created it), fresh credentials are read and become current while the old lease
still has at least half its lifetime left. The pool recycles connections after a
quarter of the lifetime (``recycle_seconds``), so every connection opened with the old credentials is
replaced long before Vault revokes them; nothing fails and nothing waits.

While Vault cannot be reached the current credentials stay in use (they are valid until the lease
ends) and ``maintain`` tries again on the next round.
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

from saleshub.errors import SalesHubError
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

    def maintain(self) -> None:
        """Renew the lease after half its lifetime; replace it when Vault no longer extends it."""
        now = time.monotonic()
        self._retired = [grant for grant in self._retired if grant.expires > now]
        grant = self._grant
        relogged = grant.generation != self.session.generation
        if not relogged and grant.expires - now > self.lifetime / 2:
            return
        if grant.renewable and not relogged:
            renew = functools.partial(
                self.session.client.sys.renew_lease, lease_id=grant.lease_id, increment=int(self.lifetime)
            )
            answer = self.session.call("renewing the lease of", self.path, renew)
            duration = float(answer.get("lease_duration") or 0)
            if duration > self.lifetime / 2:
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
                return
        fresh = self._acquire()
        with self._lock:
            self._retired.append(self._grant)
            self._grant = fresh

    @override
    def close(self) -> None:
        for grant in [self._grant, *self._retired]:
            try:
                revoke = functools.partial(self.session.client.sys.revoke_lease, lease_id=grant.lease_id)
                self.session.call("revoking the lease of", self.path, revoke)
            except SalesHubError as exc:  # Vault revokes it at its end anyway
                log.warning("database lease of %s not revoked: %s", self.path, exc)
        self._retired = []
