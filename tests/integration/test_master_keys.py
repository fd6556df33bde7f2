"""The master key that wraps data keys: Vault's transit engine (a real OpenBao, ``bao server -dev``)
and the local key file, and ``saleshub keys`` end to end on the embedded PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from saleshub.cli import app
from saleshub.errors import ConfigurationError, KeyServiceError, KeyServiceUnavailableError
from saleshub.platform.keys import LocalMasterKey, MasterKey, master_key, new_data_key
from saleshub.platform.keys_vault import CHUNK, VaultTransitKey, transit_policy
from saleshub.platform.secrets import EnvSecretStore
from saleshub.platform.settings import Settings
from saleshub.platform.vault import VaultSecretStore
from saleshub.store.data_key_versions import count_by_version, rewrap_all
from tests.integration.conftest import wait_until
from tests.support.bao import BaoServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: The data_keys table as the store's migration creates it.
DATA_KEYS = (
    "CREATE TABLE IF NOT EXISTS data_keys (key_id uuid PRIMARY KEY, wrapped bytea NOT NULL, "
    "created_at timestamptz NOT NULL DEFAULT now())"
)


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    with BaoServer(tmp_path_factory.mktemp("bao-transit")) as server:
        server.client().sys.enable_secrets_engine("transit")
        yield server


class Transit:
    """One test's transit key (created unless ``create=False``) and tokens with chosen policies."""

    def __init__(self, bao: BaoServer, *, create: bool = True) -> None:
        self.bao = bao
        self.root = bao.client()
        self.key = f"pii-{uuid.uuid4().hex[:8]}"
        if create:
            self.root.secrets.transit.create_key(self.key, key_type="aes256-gcm96")

    def token(self, policy: str) -> str:
        name = f"{self.key}-{uuid.uuid4().hex[:6]}"
        self.root.sys.create_or_update_policy(name, policy)
        return str(self.root.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"])

    def hub_token(self, *, kv: bool = False) -> str:
        # A command opening the database also reads its credentials from the KV engine (absent here).
        reads = 'path "secret/data/*" { capabilities = ["read"] }\n' if kv else ""
        return self.token(reads + transit_policy("transit", self.key))

    def admin_token(self) -> str:
        kv = 'path "secret/data/*" { capabilities = ["read"] }\n'
        return self.token(kv + transit_policy("transit", self.key, admin=True))

    def settings(self, token: str, db_url: str | None = None, **secrets: Any) -> Settings:
        groups: dict[str, Any] = {
            "secrets": {
                "backend": "vault",
                "vault_address": self.bao.address,
                "vault_token": token,
                "vault_timeout_seconds": 3,
                "vault_startup_seconds": 0,
                **secrets,
            },
            "privacy": {"keys": "vault", "vault_transit_key": self.key},
        }
        if db_url is not None:
            groups["database"] = {"url": db_url, "pool_size": 2}
        return Settings(**groups)

    def environment(self, monkeypatch: pytest.MonkeyPatch, token: str, db_url: str) -> None:
        monkeypatch.setenv("SALESHUB_SECRETS__BACKEND", "vault")
        monkeypatch.setenv("SALESHUB_SECRETS__VAULT_ADDRESS", self.bao.address)
        monkeypatch.setenv("SALESHUB_SECRETS__VAULT_TOKEN", token)
        monkeypatch.setenv("SALESHUB_SECRETS__VAULT_STARTUP_SECONDS", "0")
        monkeypatch.setenv("SALESHUB_PRIVACY__KEYS", "vault")
        monkeypatch.setenv("SALESHUB_PRIVACY__VAULT_TRANSIT_KEY", self.key)
        monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
        monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def connected(bao: BaoServer) -> Iterator[tuple[Transit, VaultSecretStore, MasterKey]]:
    transit = Transit(bao)
    settings = transit.settings(transit.hub_token())
    store = VaultSecretStore.connect(settings.secrets)
    key = master_key(settings, store)
    yield transit, store, key
    key.close()
    store.close()


def count_requests(store: VaultSecretStore) -> list[str]:
    """The URL paths of the requests the store's session sends from now on."""
    seen: list[str] = []

    def hook(response: requests.Response, *_: Any, **__: Any) -> None:
        seen.append(str(response.request.path_url))

    store.session.client.adapter.session.hooks["response"].append(hook)
    return seen


# -- Vault's transit engine ------------------------------------------------------------------------


def test_transit_wraps_and_unwraps_a_batch_in_one_round_trip_per_chunk(
    connected: tuple[Transit, VaultSecretStore, MasterKey],
) -> None:
    transit, store, key = connected
    assert isinstance(key, VaultTransitKey)
    assert key.name == f"vault:transit/{transit.key}"
    keys = [new_data_key() for _ in range(2 * CHUNK + CHUNK // 2)]
    seen = count_requests(store)
    wrapped = key.wrap(keys)
    assert seen == [f"/v1/transit/encrypt/{transit.key}"] * 3
    assert all(item.startswith(b"vault:v1:") for item in wrapped)
    assert {key.version(item) for item in wrapped} == {1}
    assert not any(k in w for k, w in zip(keys, wrapped, strict=True))
    seen.clear()
    assert key.unwrap(wrapped) == keys
    assert seen == [f"/v1/transit/decrypt/{transit.key}"] * 3
    assert key.wrap([]) == [] and key.unwrap([]) == []


def test_rotation_keeps_old_wrappings_readable_and_rewrap_moves_them_to_the_new_version(
    bao: BaoServer, connected: tuple[Transit, VaultSecretStore, MasterKey]
) -> None:
    transit, _, hub_key = connected
    admin_settings = transit.settings(transit.admin_token())
    admin_store = VaultSecretStore.connect(admin_settings.secrets)
    admin = master_key(admin_settings, admin_store)
    try:
        keys = [new_data_key() for _ in range(20)]
        wrapped = hub_key.wrap(keys)
        assert admin.newest_version() == 1
        assert admin.rotate() == 2
        assert hub_key.unwrap(wrapped) == keys  # before rewrap: v1 still opens
        assert hub_key.wrap(keys[:1])[0].startswith(b"vault:v2:")
        seen = count_requests(connected[1])
        rewrapped = hub_key.rewrap(wrapped)  # the hub's policy allows rewrap, not rotate
        assert seen == [f"/v1/transit/rewrap/{transit.key}"]
        assert {hub_key.version(item) for item in rewrapped} == {2}
        assert hub_key.newest_version() == 2  # without read on the key: from a fresh wrap
        assert hub_key.unwrap(rewrapped) == keys
        with pytest.raises(KeyServiceError) as refused:
            hub_key.rotate()
        message = str(refused.value)
        assert f"'update' on transit/keys/{transit.key}/rotate" in message
        assert transit.key in message and "transit" in message
    finally:
        admin.close()
        admin_store.close()


def test_a_policy_without_decrypt_is_named_precisely(bao: BaoServer) -> None:
    transit = Transit(bao)
    token = transit.token(
        f'path "transit/encrypt/{transit.key}" {{ capabilities = ["update"] }}\n'
        f'path "transit/rewrap/{transit.key}" {{ capabilities = ["update"] }}'
    )
    settings = transit.settings(token)
    store = VaultSecretStore.connect(settings.secrets)
    try:
        key = master_key(settings, store)
        wrapped = key.wrap([new_data_key()])
        with pytest.raises(KeyServiceError) as refused:
            key.unwrap(wrapped)
        message = str(refused.value)
        assert not isinstance(refused.value, KeyServiceUnavailableError)
        assert f"the transit key '{transit.key}' at mount 'transit'" in message
        assert f"its policy needs capability 'update' on transit/decrypt/{transit.key}" in message
        assert "permission denied" in message
        assert token not in message
    finally:
        store.close()


def test_an_altered_wrapped_key_is_refused_not_retried(
    connected: tuple[Transit, VaultSecretStore, MasterKey],
) -> None:
    _, _, key = connected
    good, bad = key.wrap([new_data_key(), new_data_key()])
    altered = bad[:-6] + (b"AAAAAA" if not bad.endswith(b"AAAAAA") else b"BBBBBB")
    with pytest.raises(KeyServiceError) as refused:
        key.unwrap([good, altered])
    assert not isinstance(refused.value, KeyServiceUnavailableError)
    assert "1 of 2 items" in str(refused.value) and "item 1" in str(refused.value)
    with pytest.raises(KeyServiceError, match="not one of"):
        key.unwrap([b"local:v1:" + bytes(40)])


def test_a_missing_transit_key_names_the_command_that_creates_it(bao: BaoServer) -> None:
    transit = Transit(bao, create=False)
    settings = transit.settings(transit.hub_token())
    store = VaultSecretStore.connect(settings.secrets)
    try:
        key = master_key(settings, store)
        with pytest.raises(KeyServiceError) as refused:  # the hub may not create it by encrypting
            key.wrap([new_data_key()])
        assert "saleshub keys init" in str(refused.value)
        with pytest.raises(KeyServiceError) as missing:
            key.unwrap([b"vault:v1:AAAA"])
        assert "does not exist" in str(missing.value) and "saleshub keys init" in str(missing.value)
    finally:
        store.close()


def test_keys_init_creates_the_transit_key_once(
    bao: BaoServer, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    transit = Transit(bao, create=False)
    transit.environment(monkeypatch, transit.admin_token(), db_url)
    first = CliRunner().invoke(app, ["keys", "init"])
    assert first.exit_code == 0, first.output
    assert f"vault:transit/{transit.key}: created, newest version 1" in first.output
    again = CliRunner().invoke(app, ["keys", "init"])
    assert again.exit_code == 0, again.output
    assert "exists, newest version 1" in again.output
    info = transit.root.secrets.transit.read_key(transit.key)["data"]
    assert info["type"] == "aes256-gcm96" and info["exportable"] is False


def test_an_unreachable_vault_is_retriable(connected: tuple[Transit, VaultSecretStore, MasterKey]) -> None:
    transit, _, key = connected
    wrapped = key.wrap([new_data_key()])
    transit.bao.pause()
    try:
        with pytest.raises(KeyServiceUnavailableError) as down:
            key.unwrap(wrapped)
        assert transit.bao.address in str(down.value) and transit.key in str(down.value)
        with pytest.raises(KeyServiceUnavailableError):
            key.wrap([new_data_key()])
    finally:
        transit.bao.resume()
    # Back: the same call succeeds once Vault answers again (a loaded machine may take a while).
    wait_until(lambda: _answers(key, wrapped), 120, "Vault answers after it was resumed")


def _answers(key: MasterKey, wrapped: list[bytes]) -> bool:
    try:
        return len(key.unwrap(wrapped)) == 1
    except KeyServiceUnavailableError:
        return False


def test_a_sealed_vault_is_retriable(tmp_path: Path) -> None:
    with BaoServer(tmp_path) as sealed:
        sealed.client().sys.enable_secrets_engine("transit")
        transit = Transit(sealed)
        settings = transit.settings(transit.hub_token())
        store = VaultSecretStore.connect(settings.secrets)
        try:
            key = master_key(settings, store)
            wrapped = key.wrap([new_data_key()])
            sealed.client().sys.seal()
            with pytest.raises(KeyServiceUnavailableError) as down:
                key.unwrap(wrapped)
            assert "unavailable" in str(down.value) and "sealed" in str(down.value).lower()
            sealed.stop()
            with pytest.raises(KeyServiceUnavailableError) as stopped:
                key.unwrap(wrapped)
            assert "connection refused" in str(stopped.value)
        finally:
            store.close()


def test_vault_keys_need_the_vault_secret_store() -> None:
    settings = Settings(privacy={"keys": "vault"}, secrets={"backend": "env"})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as wrong:
        master_key(settings, EnvSecretStore({}))
    assert "SALESHUB_PRIVACY__KEYS=vault" in str(wrong.value)
    assert "SALESHUB_SECRETS__BACKEND=vault" in str(wrong.value)


# -- the local key file ----------------------------------------------------------------------------


def test_local_key_file_is_created_private_and_rotation_keeps_old_versions(tmp_path: Path) -> None:
    # key_file unset: the default place, whatever the session's environment says
    settings = Settings(database={"data_dir": tmp_path}, privacy={"key_file": None})  # type: ignore[arg-type]
    key = master_key(settings, EnvSecretStore({}))
    assert isinstance(key, LocalMasterKey) and key.path == tmp_path / "master.key"
    assert stat.S_IMODE(key.path.stat().st_mode) == 0o600
    assert key.create() is True and key.newest_version() == 1
    keys = [new_data_key() for _ in range(5)]
    old = key.wrap(keys)
    assert key.rotate() == 2
    assert stat.S_IMODE(key.path.stat().st_mode) == 0o600
    again = LocalMasterKey(key.path)  # another process reads both versions from the file
    assert again.create() is False and again.newest_version() == 2
    assert again.unwrap(old) == keys
    rewrapped = again.rewrap(old)
    assert {again.version(item) for item in rewrapped} == {2}
    assert key.unwrap(rewrapped) == keys


def test_a_running_process_reads_keys_rewrapped_by_a_rotation_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    running = LocalMasterKey(path)  # the hub, started before the rotation
    keys = [new_data_key() for _ in range(3)]
    wrapped = running.wrap(keys)
    administrator = LocalMasterKey(path)  # `saleshub keys rotate` in another process
    assert administrator.rotate() == 2
    rewrapped = administrator.rewrap(wrapped)
    assert running.unwrap(rewrapped) == keys
    assert running.newest_version() == 2 and running.wrap(keys[:1])[0].startswith(b"local:v2:")


def test_local_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    LocalMasterKey(path)
    path.chmod(0o640)
    with pytest.raises(KeyServiceError) as exposed:
        LocalMasterKey(path)
    assert f"chmod 600 {path}" in str(exposed.value)


@pytest.mark.parametrize(
    "content",
    [b"not json", json.dumps({"versions": {"1": "c2hvcnQ="}}).encode(), json.dumps({"keys": []}).encode()],
)
def test_local_key_file_corrupt_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyServiceError) as broken:
        LocalMasterKey(path)
    assert str(path) in str(broken.value)


def test_local_key_file_unreadable_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.mkdir(mode=0o700)  # exists, private, and cannot be read as a file (whoever runs the test)
    with pytest.raises(KeyServiceError) as unreadable:
        LocalMasterKey(path)
    assert "is a directory" in str(unreadable.value) and "SALESHUB_PRIVACY__KEY_FILE" in str(unreadable.value)


# -- saleshub keys on the store's data keys --------------------------------------------------------


def store_keys(db_url: str, wrapped: list[bytes]) -> list[uuid.UUID]:
    engine = create_engine(db_url)
    ids = sorted(uuid.uuid4() for _ in wrapped)
    with engine.begin() as conn:
        conn.execute(text(DATA_KEYS))
        conn.execute(
            text("INSERT INTO data_keys (key_id, wrapped) VALUES (:key_id, :wrapped)"),
            [{"key_id": i, "wrapped": w} for i, w in zip(ids, wrapped, strict=True)],
        )
    engine.dispose()
    return ids


def stored_keys(db_url: str) -> dict[uuid.UUID, bytes]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key_id, wrapped FROM data_keys")).all()
    engine.dispose()
    return {row.key_id: bytes(row.wrapped) for row in rows}


def test_keys_rotate_rewraps_every_data_key_and_resumes(
    bao: BaoServer, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    transit = Transit(bao)
    admin = transit.admin_token()
    settings = transit.settings(admin, db_url)
    store = VaultSecretStore.connect(settings.secrets)
    key = master_key(settings, store)
    keys = [new_data_key() for _ in range(2_300)]
    foreign = LocalMasterKey(tmp_path / "other.key").wrap([new_data_key()])
    ids = store_keys(db_url, [*key.wrap(keys), *foreign])
    transit.environment(monkeypatch, admin, db_url)

    status = CliRunner().invoke(app, ["keys", "status"])
    assert status.exit_code == 0, status.output
    assert f"master key vault:transit/{transit.key}, newest version 1" in status.output
    assert re.search(r"vault\s+│\s+1\s+│\s+2,300", status.output), status.output
    assert "local (not this master key)" in status.output

    rotated = CliRunner().invoke(app, ["keys", "rotate", "--batch-size", "1000"])
    assert rotated.exit_code == 0, rotated.output
    assert f"vault:transit/{transit.key}: rotated, newest version 2" in rotated.output
    assert "2,300 data keys rewrapped, 0 already wrapped by it" in rotated.output
    after = stored_keys(db_url)
    assert {key.version(after[i]) for i in ids[:-1]} == {2}
    assert after[ids[-1]] == foreign[0]  # another master key's wrapping is left alone
    assert key.unwrap([after[i] for i in ids[:-1]]) == keys

    # A rotation done in Vault, and a rewrap interrupted after its first batch: run again, it
    # rewraps only what is left.
    transit.root.secrets.transit.rotate_key(transit.key)

    class InterruptedRunError(Exception):
        pass

    def stop(_: int) -> None:
        raise InterruptedRunError

    engine = create_engine(db_url)
    with pytest.raises(InterruptedRunError):
        rewrap_all(engine, key, batch_size=500, on_batch=stop)
    with engine.connect() as conn:
        counts = {(v.scheme, v.version): v.keys for v in count_by_version(conn)}
    assert counts == {("vault", 3): 500, ("vault", 2): 1_800, ("local", 1): 1}
    engine.dispose()
    transit.environment(monkeypatch, transit.hub_token(kv=True), db_url)  # the hub's own policy
    resumed = CliRunner().invoke(app, ["keys", "rewrap"])
    assert resumed.exit_code == 0, resumed.output
    assert "version 3: 1,800 data keys rewrapped, 500 already wrapped by it" in resumed.output
    after = stored_keys(db_url)
    assert {key.version(after[i]) for i in ids[:-1]} == {3}
    assert key.unwrap([after[i] for i in ids[:-1]]) == keys
    key.close()
    store.close()


def test_keys_rotate_with_the_local_key_file(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "master.key"
    key = LocalMasterKey(path)
    keys = [new_data_key() for _ in range(30)]
    ids = store_keys(db_url, key.wrap(keys))
    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    monkeypatch.setenv("SALESHUB_PRIVACY__KEY_FILE", str(path))
    monkeypatch.delenv("SALESHUB_SECRETS__BACKEND", raising=False)
    rotated = CliRunner().invoke(app, ["keys", "rotate", "--batch-size", "7"])
    assert rotated.exit_code == 0, rotated.output
    assert f"local:{path}: rotated, newest version 2" in rotated.output
    assert "30 data keys rewrapped" in rotated.output
    after = stored_keys(db_url)
    fresh = LocalMasterKey(path)
    assert fresh.unwrap([after[i] for i in ids]) == keys
    assert {fresh.version(after[i]) for i in ids} == {2}
    assert os.stat(path).st_mode & 0o077 == 0
