"""The platform layer: nested settings, the secret store, Kafka client credentials, telemetry.

A canary secret is planted wherever an operator may put one; it must never come back in a ``repr``,
an error message or a log line.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import sys
import threading
from pathlib import Path

import pytest

from adapters.registry import AdapterRegistry
from saleshub.errors import ConfigurationError, MissingSecretError, SecretStoreError
from saleshub.mapping.catalog import MappingCatalog
from saleshub.platform.kafka_clients import consumer_config, producer_config
from saleshub.platform.logs import configure_logging
from saleshub.platform.secrets import EnvSecretStore, FileSecretStore, secret_store_from_settings
from saleshub.platform.settings import Settings, settings_table
from saleshub.platform.telemetry import NoTelemetry, RecordingTelemetry, telemetry_from_settings
from saleshub.platform.worker_board import LOOP_REPLACEMENTS, WorkerBoard
from tests.conftest import FIXTURE_MAPPINGS, ROOT
from tests.support.synthetic import pyxis_event

CANARY = "canary-Zq81vX-do-not-leak"
WEBHOOK_SECRET = "whsec_" + "c3ludGhldGljLXRlc3Qtc2VjcmV0LTMyLWJ5dGVzISE="


def test_groups_are_read_from_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESHUB_WEB__PORT", "8181")
    monkeypatch.setenv("SALESHUB_DATABASE__POOL_SIZE", "3")
    monkeypatch.setenv("SALESHUB_KAFKA__INBOUND_TOPICS", '{"pyxis": "pyxis.orders"}')
    monkeypatch.setenv("SALESHUB_PROCESSOR__BATCH_SIZE", "50")
    settings = Settings()
    assert settings.web.port == 8181
    assert settings.database.pool_size == 3
    assert settings.kafka.inbound_topics == {"pyxis": "pyxis.orders"}
    assert settings.processor.batch_size == 50
    assert settings.processor.threads == 1 and settings.processor.idle_poll_seconds == 1.0


def test_groups_are_read_from_the_yaml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("web:\n  port: 8282\nrelay:\n  threads: 3\n", encoding="utf-8")
    monkeypatch.setenv("SALESHUB_CONFIG_FILE", str(config))
    settings = Settings()
    assert (settings.web.port, settings.relay.threads) == (8282, 3)


def test_the_experimental_settings_are_gone() -> None:
    assert "thread_switch_interval_ms" not in json.dumps(Settings.model_json_schema())
    assert "write_linger_ms" not in json.dumps(Settings.model_json_schema())


def test_every_setting_is_documented_and_the_readme_table_is_generated_from_the_model() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- settings-table:start -->\n(.*?)<!-- settings-table:end -->", readme, re.S)
    assert found, "README.md lacks the settings-table markers"
    assert found.group(1) == settings_table(), "run `python -m saleshub.platform.settings` into README.md"
    for name, group in Settings.model_fields.items():
        annotation = group.annotation
        fields = getattr(annotation, "model_fields", {name: group})
        for field_name, field in fields.items():
            assert field.description, f"{name}.{field_name} has no description"
    assert settings_table().count("\n| `SALESHUB_") == sum(
        len(getattr(f.annotation, "model_fields", {0: 0}))
        if getattr(f.annotation, "model_fields", None) is not None
        else 1
        for f in Settings.model_fields.values()
    )


def test_no_secret_in_the_repr_of_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SALESHUB_KAFKA__CLIENT_CONFIG",
        json.dumps({"security.protocol": "SASL_SSL", "sasl.password": CANARY, "ssl.key.password": CANARY}),
    )
    monkeypatch.setenv("SALESHUB_DATABASE__URL", f"postgresql+psycopg://hub:{CANARY}@db.example/hub")
    settings = Settings()
    assert CANARY not in repr(settings) and CANARY not in str(settings)
    assert CANARY not in settings.model_dump_json()
    assert settings.kafka.client_config["security.protocol"] == "SASL_SSL"
    # … and librdkafka still gets the value.
    config = producer_config(
        settings.model_copy(
            update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": "broker:9092"})}
        ),
        EnvSecretStore({}),
    )
    assert config["sasl.password"] == CANARY and config["security.protocol"] == "SASL_SSL"


def test_kafka_clients_get_the_sasl_credentials_of_the_secret_store() -> None:
    settings = Settings(kafka={"bootstrap_servers": "broker:9092"})  # type: ignore[arg-type]
    store = EnvSecretStore(
        {"SALESHUB_SECRET_KAFKA_SASL_USERNAME": "hub", "SALESHUB_SECRET_KAFKA_SASL_PASSWORD": CANARY}
    )
    for config in (producer_config(settings, store), consumer_config(settings, store)):
        assert config["sasl.username"] == "hub" and config["sasl.password"] == CANARY
    assert "sasl.password" not in producer_config(settings, EnvSecretStore({}))


def test_env_secret_store_names() -> None:
    store = EnvSecretStore(
        {
            "SALESHUB_SECRET_WEBHOOK_PYXIS": f"{WEBHOOK_SECRET} {WEBHOOK_SECRET}",
            "SALESHUB_SECRET_DATABASE_CREDENTIALS_USERNAME": "hub",
            "SALESHUB_SECRET_DATABASE_CREDENTIALS_PASSWORD": CANARY,
            "SALESHUB_SECRET_SOURCE_ERP_USERNAME": "erp-user",
        }
    )
    assert len(store.webhook_keys("pyxis")) == 2 and store.webhook_keys("tempo") == []
    credentials = store.credentials("database/credentials")
    assert credentials is not None and credentials.username == "hub"
    assert credentials.password.get_secret_value() == CANARY and CANARY not in repr(credentials)
    assert store.credentials("kafka/sasl") is None
    with pytest.raises(MissingSecretError, match="SALESHUB_SECRET_SOURCE_ERP_PASSWORD"):
        store.credentials("source/erp")
    with pytest.raises(MissingSecretError, match="SALESHUB_SECRET_KAFKA_SASL_PASSWORD"):
        store.get("kafka/sasl/password")


def test_file_secret_store_reads_nested_names_and_rereads_on_change(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(
        f"webhook:\n  pyxis: [{WEBHOOK_SECRET}]\ndatabase:\n  credentials: {{username: hub, password: {CANARY}}}\n",
        encoding="utf-8",
    )
    store = FileSecretStore(path)
    assert len(store.webhook_keys("pyxis")) == 1
    credentials = store.credentials("database/credentials")
    assert credentials is not None and credentials.password.get_secret_value() == CANARY
    path.write_text(f"webhook:\n  pyxis: [{WEBHOOK_SECRET}, {WEBHOOK_SECRET}]\n", encoding="utf-8")
    import os

    os.utime(path, ns=(1, 1))  # a different modification time, whatever the clock's resolution
    assert len(store.webhook_keys("pyxis")) == 2
    assert store.credentials("database/credentials") is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (f"webhook:\n  pyxis: [{CANARY}\n  tempo: x: y\n", "not valid YAML at line"),
        (f"- {CANARY}\n", "must be a mapping"),
        (f"webhook_secrets:\n  pyxis: [{CANARY}]\n", "now called webhook"),
        (f"webhook:\n  pyxis: [whsec_{CANARY}]\n", "webhook.pyxis, secret 1"),
        (f"webhook:\n  pyxis: [{{nested: {CANARY}}}]\n", "must be a text value"),
    ],
)
def test_file_secret_store_errors_name_the_place_never_the_secret(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SecretStoreError) as caught:
        FileSecretStore(path).webhook_keys("pyxis")
    assert expected in str(caught.value) and str(path) in str(caught.value)
    assert CANARY not in str(caught.value)
    assert caught.value.__cause__ is None or CANARY not in str(caught.value.__cause__)


def test_a_missing_secrets_file_is_a_secret_store_error(tmp_path: Path) -> None:
    with pytest.raises(SecretStoreError, match="cannot be read"):
        FileSecretStore(tmp_path / "gone.yaml").webhook_keys("pyxis")
    with pytest.raises(ConfigurationError, match="SALESHUB_SECRETS__FILE"):
        secret_store_from_settings(Settings(secrets={"backend": "file"}))  # type: ignore[arg-type]


def test_telemetry_defaults_to_nothing_and_records_for_tests() -> None:
    assert isinstance(telemetry_from_settings(Settings()), NoTelemetry)
    with NoTelemetry().span("receive", system="pyxis"):
        NoTelemetry().count("webhook.accepted", system="pyxis")
    recording = RecordingTelemetry()
    with pytest.raises(ValueError, match="boom"), recording.span("process", system="pyxis"):
        raise ValueError("boom")
    recording.timing("store.write", 0.01, system="pyxis")
    assert [(s.stage, s.tags, s.failed) for s in recording.spans] == [
        ("process", {"system": "pyxis", "error.type": "ValueError"}, True)
    ]
    assert recording.metrics == [("timing", "store.write", 0.01, {"system": "pyxis"})]


def test_decoders_take_the_configured_body_limit() -> None:
    """With a 4 MiB limit, a 1.2 MB body that passes the 413 gate is also accepted by the decoder."""
    catalog = MappingCatalog.load(FIXTURE_MAPPINGS)
    body = pyxis_event(1).replace(b'"notes": null', b'"notes": "' + b"x" * 1_200_000 + b'"')
    if body == pyxis_event(1):  # the sample has no notes field to pad: pad with whitespace instead
        body = pyxis_event(1) + b" " * 1_200_000
    assert 1_100_000 < len(body) < 4 * 1024 * 1024
    registry = AdapterRegistry.default()
    adapter = registry.create("pyxis", catalog, max_body_bytes=4 * 1024 * 1024)
    assert adapter.decode(body)["eventId"]
    with pytest.raises(Exception, match="the limit is 1048576"):
        registry.create("pyxis", catalog).decode(body)


def test_no_secret_in_the_log_of_a_failing_secret_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(f"webhook:\n  pyxis: [{CANARY}\n", encoding="utf-8")
    with caplog.at_level(logging.DEBUG), pytest.raises(SecretStoreError) as caught:
        FileSecretStore(path).webhook_keys("pyxis")
    logging.getLogger("test").error("secret store: %s", caught.value)
    assert CANARY not in caplog.text


def test_an_unknown_or_renamed_setting_is_refused_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESHUB_DATABASE_URL", "postgresql://elsewhere/db")
    with pytest.raises(ConfigurationError, match="did you mean SALESHUB_DATABASE__URL"):
        Settings()
    monkeypatch.delenv("SALESHUB_DATABASE_URL")
    monkeypatch.setenv("SALESHUB_SECRET_WEBHOOK_PYXIS", "whsec_x")  # a secret, not a setting: fine
    assert Settings().database.url is None
    with pytest.raises(ConfigurationError, match="database_url"):
        Settings(database_url="postgresql://elsewhere/db")  # type: ignore[call-arg]


def test_log_lines_follow_standard_error_after_a_captured_command_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A command run in-process with its output captured (a test's CliRunner) configures logging;
    once the capture is closed, a record from any thread goes to the standard error of that moment,
    never to the closed stream."""
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    configure_logging(Settings())
    logging.getLogger("saleshub.test").warning("while captured")
    assert "while captured" in captured.getvalue()
    captured.close()
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)
    failures: list[BaseException] = []

    def log_from_a_thread() -> None:
        try:
            logging.getLogger("httpx").warning("after the capture ended")
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=log_from_a_thread)
    thread.start()
    thread.join()
    assert not failures
    assert "after the capture ended" in later.getvalue()
    assert "Logging error" not in later.getvalue()


def test_worker_board_tells_a_restart_loop_from_a_replacement() -> None:
    board = WorkerBoard(2)
    assert board.describe() == "2 running, none replaced"
    assert board.replaced() == 1
    assert board.describe().startswith("2 running, 1 replaced, the last ") and not board.restart_loop
    for _ in range(LOOP_REPLACEMENTS - 1):
        board.replaced()
    assert board.restart_loop
    assert board.describe().startswith(
        f"restart loop: {LOOP_REPLACEMENTS} workers replaced in the last 5 min"
    )
    assert "SALESHUB_WEB__WORKER_TIMEOUT_SECONDS" in board.describe()


def _local_secrets(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "secrets.yaml").write_text(
        "webhook:\n  pyxis: [whsec_" + base64.b64encode(b"k" * 32).decode() + "]\n", encoding="utf-8"
    )


def test_the_local_secrets_file_is_found_without_serve_sh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("SALESHUB_SECRET")]:
        monkeypatch.delenv(name)
    _local_secrets(tmp_path / "data")
    settings = Settings(database={"data_dir": tmp_path / "data"})  # type: ignore[arg-type]
    store = secret_store_from_settings(settings)
    assert store.webhook_keys("pyxis") == [b"k" * 32]
    assert str(tmp_path / "data" / "secrets.yaml") in store.where("webhook/pyxis")
    assert str(tmp_path / "data" / "secrets.yaml") in store.health().detail  # what `saleshub status` prints


def test_a_chosen_backend_or_a_webhook_variable_wins_over_the_local_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("SALESHUB_SECRET")]:
        monkeypatch.delenv(name)
    _local_secrets(tmp_path)
    chosen = Settings(database={"data_dir": tmp_path}, secrets={"backend": "env"})  # type: ignore[arg-type]
    assert secret_store_from_settings(chosen).webhook_keys("pyxis") == []
    monkeypatch.setenv("SALESHUB_SECRET_WEBHOOK_TEMPO", "whsec_" + base64.b64encode(b"t" * 32).decode())
    settings = Settings(database={"data_dir": tmp_path})  # type: ignore[arg-type]
    assert isinstance(secret_store_from_settings(settings), EnvSecretStore)
