"""The Vault backend against a real Vault-API server (OpenBao ``bao server -dev``, started here).

The suite's embedded PostgreSQL is registered in bao's database secrets engine over its Unix socket,
and for the length of this module every role but ``postgres`` must log in with its password
(``scram-sha-256``), so leased credentials are really checked and a revoked lease really locks out.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from saleshub.cli import app
from saleshub.errors import SecretStoreError, SecretStoreUnavailableError
from saleshub.platform.secrets import secret_store_from_settings
from saleshub.platform.settings import Settings
from saleshub.platform.vault import VaultSecretStore
from saleshub.runtime import HubRuntime
from saleshub.store.events import Status, event_outcomes
from saleshub.store.partitions import PARENT, PARTITION_MONTHS_AHEAD, list_partitions, month_start
from tests.conftest import MAPPINGS, ROOT
from tests.integration.conftest import LiveServer, free_port, wait_until
from tests.support.bao import BaoServer, TokenReviewServer, service_account_jwt
from tests.support.synthetic import pyxis_event, signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP_ROLE = "saleshub_app"  # owns nothing, holds the hub's privileges; every leased user is a member


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    with BaoServer(tmp_path_factory.mktemp("bao")) as server:
        root = server.client()
        root.sys.enable_auth_method("approle")
        root.sys.enable_secrets_engine("database")
        yield server


@pytest.fixture(scope="module")
def vault_postgres(pg_base_url: str, bao: BaoServer) -> Iterator[str]:
    """The suite's PostgreSQL, registered in bao's database engine as ``hub``; passwords checked."""
    socket_dir = str(make_url(pg_base_url).query["host"])
    hba = Path(socket_dir) / "pg_hba.conf"
    original = hba.read_text(encoding="utf-8")
    hba.write_text("local all postgres trust\nlocal all all scram-sha-256\n" + original, encoding="utf-8")
    admin = create_engine(pg_base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_reload_conf()"))
        if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}).first() is None:
            conn.execute(text(f"CREATE ROLE {APP_ROLE} NOLOGIN"))
    bao.client().write(
        "database/config/hub",
        plugin_name="postgresql-database-plugin",
        allowed_roles="*",
        connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@/postgres?host={socket_dir}",
        username="postgres",
        password="unused-trust-auth",
    )
    yield socket_dir
    hba.write_text(original, encoding="utf-8")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_reload_conf()"))
    admin.dispose()


def grant_app_role(db_url: str) -> None:
    """The grants of docs/database-roles.md, the owner being ``postgres`` here."""
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}"))
        conn.execute(
            text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
        )
        conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}"))
        conn.execute(
            text(
                "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public "
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}"
            )
        )
        conn.execute(
            text(
                "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public "
                f"GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}"
            )
        )
    engine.dispose()


def database_role(bao: BaoServer, ttl: int, max_ttl: int) -> str:
    name = f"hub-{uuid.uuid4().hex[:8]}"
    bao.client().write(
        f"database/roles/{name}",
        db_name="hub",
        default_ttl=ttl,
        max_ttl=max_ttl,
        creation_statements=[
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' "
            f"IN ROLE {APP_ROLE};"
        ],
    )
    return name


class Tenant:
    """One test's corner of the shared bao: its KV prefix, a policy and an AppRole login for it."""

    def __init__(self, bao: BaoServer, tmp_path: Path, *, denied: str | None = None, **role: Any) -> None:
        self.bao = bao
        self.root = bao.client()
        self.prefix = f"saleshub-{uuid.uuid4().hex[:8]}"
        name = self.prefix
        policy = f"""
            path "secret/data/{self.prefix}/*" {{ capabilities = ["read"] }}
            path "database/creds/*" {{ capabilities = ["read"] }}
            path "sys/leases/renew" {{ capabilities = ["update"] }}
            path "sys/leases/revoke" {{ capabilities = ["update"] }}
        """
        if denied:
            policy += f'path "secret/data/{self.prefix}/{denied}" {{ capabilities = ["deny"] }}\n'
        self.root.sys.create_or_update_policy(name, policy)
        role.setdefault("token_ttl", "120s")
        self.root.auth.approle.create_or_update_approle(name, token_policies=[name], **role)
        self.role_id = self.root.auth.approle.read_role_id(name)["data"]["role_id"]
        self.secret_id = self.root.auth.approle.generate_secret_id(name)["data"]["secret_id"]
        self.secret_id_file = tmp_path / f"{name}.secret-id"
        self.secret_id_file.write_text(self.secret_id, encoding="utf-8")

    def put(self, path: str, **values: str) -> None:
        self.root.secrets.kv.v2.create_or_update_secret(path=f"{self.prefix}/{path}", secret=values)

    def secrets(self, **extra: Any) -> dict[str, Any]:
        return {
            "backend": "vault",
            "vault_address": self.bao.address,
            "vault_auth": "approle",
            "vault_role_id": self.role_id,
            "vault_secret_id_file": self.secret_id_file,
            "vault_path": self.prefix,
            "vault_cache_seconds": 0.5,
            "vault_timeout_seconds": 3,
            "vault_startup_seconds": 0,
            **extra,
        }

    def settings(self, db_url: str | None = None, **extra: Any) -> Settings:
        groups: dict[str, Any] = {"secrets": self.secrets(**extra)}
        if db_url is not None:
            groups["database"] = {"url": db_url, "pool_size": 4}
        return Settings(mappings_dir=MAPPINGS, **groups)


class Sender:
    """Threads posting signed Pyxis webhooks, each signed with a secret ``choose()`` picks."""

    def __init__(self, url: str, choose: Callable[[], tuple[str, str]], threads: int = 2) -> None:
        self.url, self.choose = url, choose
        self.results: list[tuple[str, int, str | None]] = []  # (secret label, status, event id)
        self.stop = threading.Event()
        self.counter = iter(range(10**9))
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                with self.lock:
                    number = 700_000 + next(self.counter)
                label, secret = self.choose()
                body = pyxis_event(number)
                response = client.post(
                    "/webhooks/pyxis", content=body, headers=signed_headers(secret, f"wh-{number}", body)
                )
                event_id = response.json().get("event_id") if response.status_code < 300 else None
                self.results.append((label, response.status_code, event_id))

    def __enter__(self) -> Sender:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def all_processed(hub: HubRuntime, event_ids: list[str], timeout: float = 300) -> None:
    wanted = [uuid.UUID(event_id) for event_id in event_ids]

    def done() -> bool:
        with hub.database.engine.connect() as conn:
            outcomes = event_outcomes(conn, wanted)
        return len(outcomes) == len(wanted) and all(
            outcome.status is not Status.ACCEPTED for outcome in outcomes.values()
        )

    wait_until(done, timeout, f"all {len(wanted)} acknowledged events are processed")


def test_webhook_secret_rotation_under_load(bao: BaoServer, db_url: str, tmp_path: Path) -> None:
    tenant = Tenant(bao, tmp_path)
    old, new = new_secret(), new_secret()
    tenant.put("webhook/pyxis", current=old)
    hub = HubRuntime.open(tenant.settings(db_url))
    phase = {"valid": ["old"]}
    secrets = {"old": old, "new": new}

    def choose() -> tuple[str, str]:
        label = random.choice(phase["valid"])
        return label, secrets[label]

    try:
        with (
            LiveServer(hub) as live,
            Sender(live.url, choose) as sender,
            httpx.Client(base_url=live.url, timeout=60) as probe,
        ):

            def answer_to(secret: str) -> int:
                body = pyxis_event(900_000 + random.randrange(100_000))
                headers = signed_headers(secret, uuid.uuid4().hex, body)
                return probe.post("/webhooks/pyxis", content=body, headers=headers).status_code

            wait_until(lambda: len(sender.results) >= 20, 120, "the sender's first webhooks are answered")
            tenant.put("webhook/pyxis", current=new, previous=old)  # the rotation starts
            wait_until(lambda: answer_to(new) == 202, 120, "the hub accepts the new secret")
            phase["valid"] = ["old", "new"]  # the sender switches, one request at a time
            sent = len(sender.results)
            wait_until(lambda: len(sender.results) >= sent + 20, 120, "webhooks signed with either")
            phase["valid"] = ["new"]
            sent = len(sender.results)
            wait_until(lambda: len(sender.results) >= sent + 10, 120, "webhooks signed with the new one")
            removed = time.monotonic()
            tenant.put("webhook/pyxis", current=new)  # the old secret is withdrawn
            wait_until(lambda: answer_to(old) == 401, 120, "the removed secret is refused")
            refused_after = time.monotonic() - removed
            sent = len(sender.results)
            wait_until(lambda: len(sender.results) >= sent + 5, 120, "webhooks after the removal")
        statuses = [status for _, status, _ in sender.results]
        refused = [result for result in sender.results if result[1] >= 300]
        assert len(statuses) > 50, f"only {len(statuses)} requests were sent"
        assert not refused, f"{len(refused)} validly signed requests refused, e.g. {refused[:3]}"
        assert {label for label, _, _ in sender.results} == {"old", "new"}
        all_processed(hub, [event_id for _, _, event_id in sender.results if event_id])
        print(
            f"\n{len(statuses)} webhooks across the rotation, none refused; old secret refused "
            f"{refused_after:.2f} s after removal"
        )
    finally:
        hub.close()


def test_leased_database_credentials_change_while_webhooks_arrive(
    bao: BaoServer, vault_postgres: str, db_url: str, tmp_path: Path
) -> None:
    grant_app_role(db_url)
    role = database_role(bao, ttl=8, max_ttl=18)
    tenant = Tenant(bao, tmp_path, token_max_ttl="24s", token_ttl="8s")
    secret = new_secret()
    tenant.put("webhook/pyxis", current=secret)
    hub = HubRuntime.open(tenant.settings(db_url, vault_database_role=role))
    store = hub.secrets
    assert isinstance(store, VaultSecretStore)
    lease = store.leased_credentials("database/credentials")
    assert lease is not None
    users, expiries = [lease.current().username], [lease.info().expires_at]
    try:
        with LiveServer(hub) as live, Sender(live.url, lambda: ("only", secret)) as sender:

            def renewed_and_replaced() -> bool:
                info = lease.info()
                if info.username != users[-1]:
                    users.append(info.username)
                if info.expires_at != expiries[-1]:
                    expiries.append(info.expires_at)
                return len(users) >= 2 and len(expiries) > len(users) and len(sender.results) > 50

            wait_until(renewed_and_replaced, 180, "the lease was renewed, then replaced")
        codes = [status for _, status, _ in sender.results]
        assert len(codes) > 50 and all(code == 202 for code in codes), sorted(set(codes))
        assert len(users) >= 2, "the lease was never replaced by fresh credentials"
        assert len(expiries) > len(users), "the lease was never renewed"
        all_processed(hub, [event_id for _, _, event_id in sender.results if event_id])

        def connects_as_the_current_lease() -> bool:
            # Pooled connections opened with the previous user are recycled within a quarter of
            # its lease's lifetime; from then on every connection logs in as the current one.
            with hub.database.engine.connect() as conn:
                return bool(conn.execute(text("SELECT session_user")).scalar() == lease.current().username)

        wait_until(connects_as_the_current_lease, 120, "connections log in as the current lease's user")
        users.append(lease.current().username)
        # The token (TTL 8 s, at most 24 s) was renewed and then replaced by a new login.
        assert store.health().available
        print(
            f"\n{len(codes)} webhooks, all 202, across {len(users)} database users and "
            f"{len(expiries)} lease expiries"
        )
    finally:
        hub.close()
    admin = create_engine(db_url)
    with admin.connect() as conn:  # closing the hub gave the lease back: Vault dropped the user
        left = conn.execute(text("SELECT count(*) FROM pg_roles WHERE rolname = :u"), {"u": users[-1]})
        assert left.scalar() == 0
    admin.dispose()


def test_an_unrenewed_lease_expires_and_locks_its_user_out(
    bao: BaoServer, vault_postgres: str, db_url: str, tmp_path: Path
) -> None:
    grant_app_role(db_url)
    role = database_role(bao, ttl=2, max_ttl=2)
    tenant = Tenant(bao, tmp_path)
    leased = VaultSecretStore(tenant.settings(vault_database_role=role).secrets)
    leased.session.login()
    lease = leased.leased_credentials("database/credentials")
    assert lease is not None
    credentials = lease.current()
    url = make_url(db_url).set(
        username=credentials.username, password=credentials.password.get_secret_value()
    )
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == credentials.username

    def locked_out() -> bool:
        try:
            engine.connect().close()
        except Exception as exc:
            assert re.search(r"password authentication failed|does not exist", str(exc)), exc
            return True
        return False

    wait_until(locked_out, 120, "the expired lease's user is locked out")
    engine.dispose()
    leased.close()


def test_vault_frozen_mid_run_then_back(bao: BaoServer, db_url: str, tmp_path: Path) -> None:
    tenant = Tenant(bao, tmp_path)
    secret = new_secret()
    tenant.put("webhook/pyxis", current=secret)
    hub = HubRuntime.open(tenant.settings(db_url, vault_outage_grace_seconds=10))

    def post(client: httpx.Client) -> int:
        body = pyxis_event(random.randrange(10**8))
        return client.post(
            "/webhooks/pyxis", content=body, headers=signed_headers(secret, uuid.uuid4().hex, body)
        ).status_code

    try:
        with LiveServer(hub) as live, httpx.Client(base_url=live.url, timeout=30) as client:
            assert post(client) == 202
            bao.pause()
            try:
                started = time.monotonic()
                during: list[int] = []
                while time.monotonic() - started < 2.0:  # within the grace: cached secrets serve
                    during.append(post(client))
                    time.sleep(0.05)
                assert set(during) == {202}
                wait_until(lambda: post(client) == 503, 120, "the cached secret runs out of grace")
                ready = client.get("/health/ready")
                assert ready.status_code == 503
                assert bao.address in ready.json()["secrets"] and "unreachable" in ready.json()["secrets"]
            finally:
                bao.resume()
            wait_until(lambda: post(client) == 202, 120, "Vault answers again and webhooks are taken")
            assert client.get("/health/ready").json()["secrets"] == "ok"
    finally:
        hub.close()


def test_vault_down_at_start_is_retried_then_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    settings = Settings(
        secrets={  # type: ignore[arg-type]
            "backend": "vault",
            "vault_address": closed,
            "vault_token": "a-token",
            "vault_startup_seconds": 2,
        }
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(SecretStoreUnavailableError) as raised:
        secret_store_from_settings(settings)
    assert time.monotonic() - started >= 1.5
    message = str(raised.value)
    assert closed in message and "gave up logging in after 2 s" in message
    assert "SALESHUB_SECRETS__VAULT_STARTUP_SECONDS" in message
    assert sum("retrying in" in record.getMessage() for record in caplog.records) >= 2
    assert "a-token" not in message + caplog.text


def test_approle_with_a_wrong_secret_id_names_the_method_not_the_secret(
    bao: BaoServer, tmp_path: Path
) -> None:
    tenant = Tenant(bao, tmp_path)
    wrong = str(uuid.uuid4())
    tenant.secret_id_file.write_text(wrong, encoding="utf-8")
    with pytest.raises(SecretStoreError) as raised:
        secret_store_from_settings(tenant.settings())
    message = str(raised.value)
    assert "approle auth at auth/approle" in message and "auth/approle/login" in message
    assert wrong not in message and tenant.secret_id not in message


def test_a_policy_that_denies_one_path(bao: BaoServer, tmp_path: Path) -> None:
    tenant = Tenant(bao, tmp_path, denied="webhook/tempo")
    tenant.put("webhook/pyxis", current=new_secret())
    tenant.put("webhook/tempo", current=new_secret())
    store = secret_store_from_settings(tenant.settings())
    try:
        assert len(store.webhook_keys("pyxis")) == 1
        with pytest.raises(SecretStoreError) as raised:
            store.webhook_keys("tempo")
        message = str(raised.value)
        assert f"secret/{tenant.prefix}/webhook/tempo" in message
        assert "approle auth at auth/approle" in message and "permission denied" in message
        assert store.webhook_keys("erp") == []  # allowed, and simply not there
    finally:
        store.close()


def test_kubernetes_login_against_a_token_review_server(bao: BaoServer, tmp_path: Path) -> None:
    root = bao.client()
    with TokenReviewServer() as kubernetes:
        mount = f"k8s-{uuid.uuid4().hex[:6]}"
        root.sys.enable_auth_method("kubernetes", path=mount)
        if "pki/" not in root.sys.list_mounted_secrets_engines()["data"]:
            root.sys.enable_secrets_engine("pki")
        ca = root.write("pki/root/generate/internal", common_name="test-ca", ttl="1h")["data"]["certificate"]
        root.write(
            f"auth/{mount}/config",
            kubernetes_host=kubernetes.url,
            kubernetes_ca_cert=ca,
            disable_local_ca_jwt=True,
        )
        tenant = Tenant(bao, tmp_path)
        tenant.put("kafka/sasl", username="hub-producer", password="kafka-password-" + uuid.uuid4().hex)
        root.write(
            f"auth/{mount}/role/hub",
            bound_service_account_names="saleshub",
            bound_service_account_namespaces="integration",
            token_policies=tenant.prefix,
            token_ttl="60s",
        )
        token = service_account_jwt("integration", "saleshub")
        kubernetes.accounts[token] = ("integration", "saleshub")
        token_file = tmp_path / "token"
        token_file.write_text(token, encoding="utf-8")
        config = tenant.secrets(
            vault_auth="kubernetes",
            vault_auth_mount=mount,
            vault_role="hub",
            vault_service_account_token_file=token_file,
        )
        store = secret_store_from_settings(Settings(secrets=config))  # type: ignore[arg-type]
        try:
            sasl = store.credentials("kafka/sasl")
            assert sasl is not None and sasl.username == "hub-producer"
            assert kubernetes.reviews >= 1
        finally:
            store.close()
        token_file.write_text(service_account_jwt("integration", "someone-else"), encoding="utf-8")
        with pytest.raises(SecretStoreError, match=f"kubernetes auth at auth/{mount}"):
            secret_store_from_settings(Settings(secrets=config))  # type: ignore[arg-type]


def test_canary_secrets_never_in_logs_reprs_or_errors(
    bao: BaoServer,
    vault_postgres: str,
    db_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    grant_app_role(db_url)
    tenant = Tenant(bao, tmp_path, denied="source/erp")
    canaries = {
        "webhook": new_secret(),
        "kafka": "CANARY-kafka-" + uuid.uuid4().hex,
        "source": "CANARY-source-" + uuid.uuid4().hex,
    }
    tenant.put("webhook/pyxis", current=canaries["webhook"])
    tenant.put("kafka/sasl", username="hub", password=canaries["kafka"])
    tenant.put("source/erp", username="erp", password=canaries["source"])
    tenant.put("source/tempo", username="tempo")  # no password: an error that names the key
    role = database_role(bao, ttl=30, max_ttl=60)
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        hub = HubRuntime.open(tenant.settings(db_url, vault_database_role=role))
        store = hub.secrets
        try:
            lease = store.leased_credentials("database/credentials")
            assert lease is not None
            canaries["database"] = lease.current().password.get_secret_value()
            sasl = store.credentials("kafka/sasl")
            seen += [repr(store), repr(lease), repr(lease.current()), repr(sasl), repr(store.health())]
            seen += [repr(hub.database), hub.database.description, str(hub.database.engine.url)]
            for call in (lambda: store.credentials("source/erp"), lambda: store.credentials("source/tempo")):
                with pytest.raises(SecretStoreError) as raised:
                    call()
                seen.append(str(raised.value))
        finally:
            hub.close()
    seen += [caplog.text, *capsys.readouterr()]
    canaries["secret_id"] = tenant.secret_id
    everything = "\n".join(seen)
    for name, value in canaries.items():
        assert value not in everything, f"the {name} canary leaked"
    assert "lacks the key 'password'" in everything


def test_status_shows_the_vault_connection_and_the_lease(
    bao: BaoServer,
    vault_postgres: str,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    grant_app_role(db_url)
    role = database_role(bao, ttl=60, max_ttl=120)
    tenant = Tenant(bao, tmp_path)
    for key, value in tenant.secrets(vault_database_role=role).items():
        monkeypatch.setenv(f"SALESHUB_SECRETS__{key.upper()}", str(value))
    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    monkeypatch.setenv("COLUMNS", "250")
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert f"secrets: Vault at {bao.address} (approle auth at auth/approle): connected" in result.output
    assert f"secrets: database/credentials leased from database/creds/{role} as v-approle-" in result.output
    assert "UTC (renewable)" in result.output
    assert tenant.secret_id not in result.output


def post_signed(client: httpx.Client, secret: str, system: str = "pyxis") -> httpx.Response:
    body = pyxis_event(random.randrange(10**8))
    return client.post(
        f"/webhooks/{system}", content=body, headers=signed_headers(secret, uuid.uuid4().hex, body)
    )


def test_a_webhook_secret_that_vanishes_from_vault_is_a_503_never_a_401(
    bao: BaoServer, db_url: str, tmp_path: Path
) -> None:
    tenant = Tenant(bao, tmp_path)
    secret = new_secret()
    tenant.put("webhook/pyxis", current=secret)
    hub = HubRuntime.open(tenant.settings(db_url))
    try:
        with LiveServer(hub) as live, httpx.Client(base_url=live.url, timeout=30) as client:
            assert post_signed(client, secret).status_code == 202
            # Vault restored from an empty backup: the secret that existed a moment ago is "not found".
            tenant.root.secrets.kv.v2.delete_metadata_and_all_versions(path=f"{tenant.prefix}/webhook/pyxis")
            answers: list[httpx.Response] = []

            def refused() -> bool:
                answers.append(post_signed(client, secret))
                return answers[-1].status_code != 202

            wait_until(refused, 20, "the hub reads the secret again (cache 0.5 s)")
            for _ in range(5):  # and it stays so: the sender is told to come back, not that it is wrong
                answers.append(post_signed(client, secret))
            gone = [answer for answer in answers if answer.status_code != 202]
            assert {answer.status_code for answer in gone} == {503}, [a.status_code for a in gone]
            assert all(answer.headers.get("retry-after") for answer in gone)
            ready = client.get("/health/ready")
            assert ready.status_code == 503 and "webhook/pyxis" in ready.json()["secrets"], ready.json()
            # A secret that never existed is still a 401: the sender is not proven.
            assert post_signed(client, secret, "tempo").status_code == 401
            tenant.put("webhook/pyxis", current=secret)  # restored
            wait_until(lambda: post_signed(client, secret).status_code == 202, 20, "the secret is back")
            assert client.get("/health/ready").status_code == 200
            # Vault unreachable before a path was ever read: 503 too, never 401.
            bao.pause()
            try:
                answer = post_signed(client, new_secret(), "erp")
                assert answer.status_code == 503 and answer.headers.get("retry-after"), answer.text
            finally:
                bao.resume()
    finally:
        hub.close()


def test_a_revoked_lease_is_replaced_at_once_and_never_makes_a_500(
    bao: BaoServer, vault_postgres: str, db_url: str, tmp_path: Path
) -> None:
    grant_app_role(db_url)
    # A lease and a token that live long: only the revocation can make the hub change credentials.
    role = database_role(bao, ttl=600, max_ttl=1200)
    tenant = Tenant(bao, tmp_path, token_ttl="1200s")
    secret = new_secret()
    tenant.put("webhook/pyxis", current=secret)
    hub = HubRuntime.open(tenant.settings(db_url, vault_database_role=role))
    lease = hub.secrets.leased_credentials("database/credentials")
    assert lease is not None
    first = lease.current().username
    try:
        with LiveServer(hub) as live, httpx.Client(base_url=live.url, timeout=30) as client:
            assert post_signed(client, secret).status_code == 202
            bao.client().sys.revoke_prefix(f"database/creds/{role}")  # `bao lease revoke -prefix`
            answers: list[httpx.Response] = []

            def accepted() -> bool:
                answers.append(post_signed(client, secret))
                return answers[-1].status_code == 202

            wait_until(accepted, 30, "webhooks are accepted again with fresh credentials")
            assert lease.current().username != first
            codes = [answer.status_code for answer in answers]
            assert set(codes) <= {202, 503}, codes
            assert all(a.headers.get("retry-after") for a in answers if a.status_code == 503)

            # Revoked while Vault cannot be reached: the database fails, and readiness says why.
            second = lease.current().username
            bao.client().sys.revoke_prefix(f"database/creds/{role}")
            bao.pause()
            try:
                answer = post_signed(client, secret)
                assert answer.status_code == 503 and answer.headers.get("retry-after"), answer.text
                ready = client.get("/health/ready")
                body = ready.json()
                assert ready.status_code == 503, body
                assert body["database"].startswith(
                    f"credentials refused: the database refuses the user {second} leased from "
                    f"database/creds/{role} ("
                ), body
                assert (
                    f"the lease is revoked or expired and is being replaced from Vault at {bao.address}"
                    in (body["database"])
                ), body
                assert body["secrets"] != "ok", body
            finally:
                bao.resume()
            wait_until(accepted, 30, "webhooks are accepted again once Vault answers")
            assert lease.current().username not in (first, second)
            assert client.get("/health/ready").json()["database"] == "ok"
    finally:
        hub.close()


def test_status_answers_at_once_and_says_what_is_down(tmp_path: Path, db_url: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("SALESHUB_")}
    env |= {
        "SALESHUB_SECRETS__BACKEND": "vault",
        "SALESHUB_SECRETS__VAULT_ADDRESS": closed,
        "SALESHUB_SECRETS__VAULT_TOKEN": "a-token",
        "SALESHUB_SECRETS__VAULT_STARTUP_SECONDS": "3600",  # serve would wait; status must not
        "SALESHUB_DATABASE__URL": db_url,
        "COLUMNS": "250",
    }
    result = subprocess.run(
        [sys.executable, "-m", "saleshub", "status"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "retrying" not in output, output
    assert (
        f"secrets: Vault at {closed} (token auth): not logged in: Vault at {closed} is unavailable ("
        in output
    )
    assert (
        "database: not checked: its credentials (database/credentials) come from the secret store" in output
    )
    assert "a-token" not in output


def test_month_rollover_restart_with_leased_credentials_runs_no_ddl(  # noqa: PLR0915 - one scenario, in order
    bao: BaoServer,
    vault_postgres: str,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    grant_app_role(db_url)
    role = database_role(bao, ttl=300, max_ttl=600)
    tenant = Tenant(bao, tmp_path)
    today = datetime.now(UTC).date()
    months = [month_start(today, shift) for shift in range(4)]
    admin = create_engine(db_url)
    with admin.begin() as conn:  # the last upgrade ran a month ago: the window's last month is missing
        conn.execute(text(f"DROP TABLE {PARENT}_{months[3]:%Y%m}"))
    settings = tenant.settings(db_url, vault_database_role=role)
    with caplog.at_level(logging.WARNING):
        hub = HubRuntime.open(settings, migrate=True)  # what `saleshub serve` opens
    try:
        assert hub.database.description.endswith("(credentials leased from the secret store)")
        warned = caplog.text
        assert f"{months[2]:%Y-%m}" in warned and "saleshub db upgrade" in warned, warned
    finally:
        hub.close()
    with admin.connect() as conn:
        names = {info.name for info in list_partitions(conn, count_rows=False)}
    assert f"{PARENT}_{months[3]:%Y%m}" not in names, "the leased user created a partition"

    # The migration step runs as the owner role, with its own credentials, never with the lease.
    for key, value in tenant.secrets(vault_database_role=role).items():
        monkeypatch.setenv(f"SALESHUB_SECRETS__{key.upper()}", str(value))
    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    monkeypatch.setenv("COLUMNS", "250")
    status = CliRunner().invoke(app, ["status"])
    assert status.exit_code == 0, status.output
    assert f"event partitions: the event partitions end with {months[2]:%Y-%m}" in status.output
    assert "saleshub db upgrade` with the owner's credentials" in status.output
    refused = CliRunner().invoke(app, ["db", "upgrade"])
    assert refused.exit_code == 1
    assert "database/owner" in refused.output, refused.output
    tenant.put("database/owner", username="postgres", password="owner-password-unused-by-trust")
    upgraded = CliRunner().invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert "as postgres" in upgraded.output, upgraded.output
    ahead = [month_start(today, shift) for shift in range(PARTITION_MONTHS_AHEAD + 1)]
    with admin.connect() as conn:
        names = {info.name for info in list_partitions(conn, count_rows=False)}
        owners = set(
            conn.execute(
                text("SELECT DISTINCT tableowner FROM pg_tables WHERE tablename LIKE :p"),
                {"p": f"{PARENT}_%"},
            ).scalars()
        )
    assert {f"{PARENT}_{month:%Y%m}" for month in ahead} <= names
    assert owners == {"postgres"}
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        hub = HubRuntime.open(settings, migrate=True)
    try:
        assert "saleshub db upgrade" not in caplog.text
        with hub.database.engine.begin() as conn:  # the leased user writes into the new partitions
            assert conn.execute(text("SELECT current_user")).scalar() != "postgres"
            conn.execute(text(f"SELECT count(*) FROM {PARENT}_{months[3]:%Y%m}"))
    finally:
        hub.close()
    admin.dispose()
