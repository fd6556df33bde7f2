"""The Vault backend's configuration errors, found before any request is sent (no network)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from saleshub.errors import ConfigurationError
from saleshub.platform.secrets import secret_store_from_settings
from saleshub.platform.settings import Settings
from saleshub.platform.vault_session import VaultSession


def vault(**fields: object) -> Settings:
    return Settings(secrets={"backend": "vault", **fields})  # type: ignore[arg-type]


def test_vault_needs_an_address() -> None:
    with pytest.raises(ConfigurationError, match="SALESHUB_SECRETS__VAULT_ADDRESS"):
        secret_store_from_settings(vault())


def test_without_hvac_the_message_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hvac", None)  # makes `import hvac` fail
    monkeypatch.delitem(sys.modules, "saleshub.platform.vault", raising=False)
    monkeypatch.delitem(sys.modules, "saleshub.platform.vault_session", raising=False)
    monkeypatch.delitem(sys.modules, "saleshub.platform.vault_lease", raising=False)
    with pytest.raises(ConfigurationError, match="pip install hvac"):
        secret_store_from_settings(vault(vault_address="http://127.0.0.1:9"))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"vault_auth": "token"}, "SALESHUB_SECRETS__VAULT_TOKEN_FILE"),
        ({"vault_auth": "approle"}, "SALESHUB_SECRETS__VAULT_ROLE_ID"),
        ({"vault_auth": "approle", "vault_role_id": "r"}, "SALESHUB_SECRETS__VAULT_SECRET_ID_FILE"),
        ({"vault_auth": "kubernetes"}, "SALESHUB_SECRETS__VAULT_ROLE"),
        (
            {
                "vault_auth": "kubernetes",
                "vault_role": "hub",
                "vault_service_account_token_file": "/nonexistent",
            },
            "service account token file /nonexistent cannot be read",
        ),
    ],
    ids=["token", "approle-role", "approle-secret", "kubernetes-role", "kubernetes-token"],
)
def test_each_login_method_says_what_it_lacks(fields: dict[str, object], expected: str) -> None:
    session = VaultSession(vault(vault_address="http://127.0.0.1:9", **fields).secrets)
    with pytest.raises(ConfigurationError, match=expected):
        session.login()


def test_a_secret_id_given_as_a_setting_is_masked(tmp_path: Path) -> None:
    settings = vault(vault_address="http://127.0.0.1:9", vault_secret_id="CANARY-secret-id")
    assert "CANARY-secret-id" not in repr(settings)
    assert "CANARY-secret-id" not in settings.model_dump_json()
