"""Bearer tokens against a provider's published keys: expiry, audience, issuer, a stranger's key, and
the provider rotating its signing key (followed by fetching the key set again, without a restart)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from saleshub.platform.auth import AuthenticationError, ForbiddenError, TokenVerifier
from saleshub.platform.settings import ConsoleSettings
from tests.support.signing_keys import KeyPublisher

pytestmark = pytest.mark.integration

ROLES = {"hub-stewards": "steward", "hub-viewers": "viewer", "hub-admins": "admin"}


@pytest.fixture
def publisher() -> Iterator[KeyPublisher]:
    with KeyPublisher() as running:
        yield running


def verifier_for(publisher: KeyPublisher) -> TokenVerifier:
    settings = ConsoleSettings(issuer=publisher.issuer, client_id="hub", roles=ROLES, leeway_seconds=5)
    return TokenVerifier(settings, refresh_seconds=0.0)


def claims(publisher: KeyPublisher, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": publisher.issuer,
        "aud": "hub",
        "sub": "s-1",
        "name": "Sam Steward",
        "groups": ["hub-viewers", "hub-stewards"],
        "iat": now,
        "exp": now + 300,
        **overrides,
    }


def test_a_valid_token_gives_the_highest_role_of_the_groups(publisher: KeyPublisher) -> None:
    key = publisher.new_key("k1")
    principal = verifier_for(publisher).principal(publisher.sign(key, claims(publisher)))
    assert (principal.subject, principal.name, principal.role) == ("s-1", "Sam Steward", "steward")
    assert principal.has("operator") and not principal.has("admin")


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"aud": "another-app"}, "aud"),
        ({"iss": "http://127.0.0.1:1"}, "iss"),
    ],
)
def test_expired_foreign_audience_or_issuer_is_refused(
    publisher: KeyPublisher, overrides: dict[str, Any], why: str
) -> None:
    key = publisher.new_key("k1")
    with pytest.raises(AuthenticationError, match=why):
        verifier_for(publisher).verify(publisher.sign(key, claims(publisher, **overrides)))


def test_a_strangers_key_is_refused_even_under_a_published_kid(publisher: KeyPublisher) -> None:
    publisher.new_key("k1")
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(AuthenticationError):
        verifier_for(publisher).verify(publisher.sign(stranger, claims(publisher)))
    unknown = RSAKey.generate_key(2048, parameters={"kid": "k9"})
    with pytest.raises(AuthenticationError, match="does not publish"):
        verifier_for(publisher).verify(publisher.sign(unknown, claims(publisher)))


def test_the_provider_rotating_its_key_is_followed(publisher: KeyPublisher) -> None:
    old = publisher.new_key("k1")
    verifier = verifier_for(publisher)
    assert verifier.verify(publisher.sign(old, claims(publisher)))["sub"] == "s-1"
    fetched = publisher.jwks_requests
    new = publisher.new_key("k2")
    publisher.keys.remove(old)
    assert verifier.verify(publisher.sign(new, claims(publisher)))["sub"] == "s-1"
    assert publisher.jwks_requests == fetched + 1


def test_no_mapped_group_is_forbidden(publisher: KeyPublisher) -> None:
    key = publisher.new_key("k1")
    with pytest.raises(ForbiddenError, match="no group"):
        verifier_for(publisher).principal(publisher.sign(key, claims(publisher, groups=["cafeteria"])))
