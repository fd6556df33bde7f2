"""Who is asking: bearer JWTs checked against the OIDC provider's keys, and roles from groups.

``TokenVerifier`` reads the provider's discovery document and JSON Web Key Set, and accepts a token
only when its signature verifies with one of the provider's keys and its issuer, audience, expiry,
not-before and issued-at claims hold (within ``console.leeway_seconds``). A token signed with a key
the set does not have makes it fetch the set again (at most once per ``refresh_seconds``), so the
provider rotating its signing key is followed without a restart, while a token signed with a
stranger's key is refused.

``principal_from_claims`` turns verified claims into a ``Principal``: the subject, the name and the
highest role that ``console.roles`` gives one of the person's groups (``console.groups_claim``).
A person with no mapped group has no role and is refused. Roles rank ``viewer`` < ``operator`` <
``steward`` < ``admin``; each may do what the ones below it may.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from saleshub.errors import ConfigurationError, RetriableError, SalesHubError
from saleshub.platform.settings import ROLES, ConsoleSettings

__all__ = [
    "AuthenticationError",
    "ForbiddenError",
    "Principal",
    "ProviderMetadata",
    "TokenVerifier",
    "principal_from_claims",
    "role_rank",
]

_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]


class AuthenticationError(SalesHubError):
    """No valid credentials: a missing, malformed, expired or wrongly signed token (HTTP 401)."""


class ForbiddenError(SalesHubError):
    """The person is known but their role does not allow the action (HTTP 403)."""


def role_rank(role: str) -> int:
    """The rank of ``role`` (viewer 0 … admin 3)."""
    return ROLES.index(role)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated person: the provider's subject, their name and their role."""

    subject: str
    name: str
    role: str

    def has(self, role: str) -> bool:
        """Whether this person's role is ``role`` or above it."""
        return role_rank(self.role) >= role_rank(role)

    def require(self, role: str, action: str) -> None:
        """Raise ``ForbiddenError`` unless the role is ``role`` or above."""
        if not self.has(role):
            raise ForbiddenError(f"{action} needs the {role} role; {self.name} is {self.role}")

    @property
    def sees_personal_data(self) -> bool:
        """Viewers see personal data masked; operators and above see it."""
        return self.has("operator")


def principal_from_claims(claims: dict[str, Any], settings: ConsoleSettings) -> Principal:
    """The person of verified ``claims``, with the highest role their groups map to."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthenticationError("the token has no subject (sub)")
    groups = claims.get(settings.groups_claim) or []
    if isinstance(groups, str):
        groups = groups.split()
    roles = [settings.roles[g] for g in groups if isinstance(g, str) and g in settings.roles]
    if not roles:
        raise ForbiddenError(
            f"{subject} is in no group that console.roles maps to a role (claim {settings.groups_claim!r})"
        )
    name = claims.get("name") or claims.get("preferred_username") or claims.get("email") or subject
    return Principal(subject=subject, name=str(name), role=max(roles, key=role_rank))


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of the provider's discovery document the hub uses."""

    issuer: str
    jwks_uri: str
    authorization_endpoint: str
    token_endpoint: str
    end_session_endpoint: str | None


class TokenVerifier:
    """Verifies the provider's JWTs against its published keys (thread-safe)."""

    def __init__(
        self,
        settings: ConsoleSettings,
        client: httpx.Client | None = None,
        refresh_seconds: float = 10.0,
    ) -> None:
        if not settings.issuer or not settings.client_id:
            raise ConfigurationError(
                "the console needs SALESHUB_CONSOLE__ISSUER and SALESHUB_CONSOLE__CLIENT_ID"
            )
        self.settings = settings
        self.issuer = settings.issuer.rstrip("/")
        self.audience = settings.audience or settings.client_id
        self._http = client or httpx.Client(timeout=10.0)
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._metadata: ProviderMetadata | None = None
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")

    def _get(self, url: str) -> dict[str, Any]:
        try:
            response = self._http.get(url)
            response.raise_for_status()
            document: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RetriableError(f"the OIDC provider did not answer {url}: {exc}") from exc
        return document

    def metadata(self) -> ProviderMetadata:
        """The provider's discovery document (read once)."""
        with self._lock:
            if self._metadata is None:
                found = self._get(f"{self.issuer}/.well-known/openid-configuration")
                if str(found.get("issuer", "")).rstrip("/") != self.issuer:
                    raise ConfigurationError(
                        f"the provider at {self.issuer} calls itself {found.get('issuer')!r}; "
                        "SALESHUB_CONSOLE__ISSUER must be exactly its issuer"
                    )
                self._metadata = ProviderMetadata(
                    issuer=self.issuer,
                    jwks_uri=found["jwks_uri"],
                    authorization_endpoint=found["authorization_endpoint"],
                    token_endpoint=found["token_endpoint"],
                    end_session_endpoint=found.get("end_session_endpoint"),
                )
            return self._metadata

    def _key_set(self, kid: str | None) -> KeySet:
        metadata = self.metadata()
        with self._lock:
            known = self._keys is not None and (kid is None or _has_kid(self._keys, kid))
            due = time.monotonic() - self._fetched_at >= self._refresh_seconds
            if self._keys is None or (not known and due):
                self._keys = KeySet.import_key_set(self._get(metadata.jwks_uri))  # type: ignore[arg-type]
                self._fetched_at = time.monotonic()
            return self._keys

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of ``token`` if it is the provider's, unexpired and for this audience."""
        try:
            header = jws.extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError) as exc:
            raise AuthenticationError(f"not a signed JWT: {exc}") from None
        kid = header.get("kid")
        keys = self._key_set(kid if isinstance(kid, str) else None)
        if isinstance(kid, str) and not _has_kid(keys, kid):
            raise AuthenticationError(
                f"the token is signed with key {kid!r}, which the provider does not publish"
            )
        try:
            decoded = jwt.decode(token, keys, algorithms=_ALGORITHMS)
            registry = jwt.JWTClaimsRegistry(
                leeway=self.settings.leeway_seconds,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.audience},
                exp={"essential": True},
                sub={"essential": True},
            )
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise AuthenticationError(f"token refused: {exc}") from None
        return dict(decoded.claims)

    def principal(self, token: str) -> Principal:
        """The person a bearer token stands for."""
        return principal_from_claims(self.verify(token), self.settings)


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)
