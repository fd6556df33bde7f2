"""The hub's settings: one pydantic-settings model with a documented group per part of the hub.

Sources, first wins: constructor arguments, environment variables, an optional ``.env`` file in the
working directory, an optional YAML file named by ``SALESHUB_CONFIG_FILE``, then the defaults.

A field of a group is read from ``SALESHUB_<GROUP>__<FIELD>`` (``SALESHUB_DATABASE__URL``,
``SALESHUB_WEB__PORT``, ``SALESHUB_KAFKA__INBOUND_TOPICS='{"pyxis": "pyxis.orders"}'``); a group can
also be given whole as JSON (``SALESHUB_WEB='{"port": 8081}'``). In the YAML file the groups are
nested mappings (``web: {port: 8081}``). The top-level fields are ``SALESHUB_<FIELD>``.

Secrets are not settings: webhook secrets, database, Kafka SASL and source-API credentials come from
the secret store (``saleshub.platform.secrets``). A secret that still arrives through a setting
(a password in ``database.url``, a ``sasl.password`` in ``kafka.client_config``) is held as
``SecretStr``, so no ``repr`` or log line shows it.

``python -m saleshub.platform.settings`` prints the README's configuration table from this model
(a test keeps the two equal).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from saleshub.errors import ConfigurationError
from saleshub.platform.limits import DEFAULT_MAX_BODY_BYTES

__all__ = [
    "CONFIG_FILE_VARIABLE",
    "ENV_PREFIX",
    "ROLES",
    "SECRET_ENV_PREFIX",
    "ConsoleSettings",
    "DatabaseSettings",
    "KafkaProperties",
    "KafkaSettings",
    "PollerSettings",
    "PrivacySettings",
    "ProcessorSettings",
    "RelaySettings",
    "RetentionSettings",
    "SecretsSettings",
    "Settings",
    "SystemPollSettings",
    "TelemetrySettings",
    "WebSettings",
    "is_secret_property",
    "known_environment_names",
    "settings_table",
    "unknown_environment_names",
]

CONFIG_FILE_VARIABLE = "SALESHUB_CONFIG_FILE"
ENV_PREFIX = "SALESHUB_"
#: The environment secret store's variables (``SALESHUB_SECRET_WEBHOOK_PYXIS`` …): not settings.
SECRET_ENV_PREFIX = "SALESHUB_SECRET_"

# librdkafka properties whose values are credentials (their names contain one of these words).
_SECRET_WORDS = ("password", "secret", "sasl.username", "ssl.key.pem", "token")


def is_secret_property(name: str) -> bool:
    """Whether the librdkafka property ``name`` holds a credential (``sasl.password`` …)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _mask_secret_properties(value: object) -> object:
    # Runs before validation, so the plain value never reaches a repr, a log or a validation error.
    if not isinstance(value, dict):
        return value
    return {
        key: SecretStr(str(item))
        if is_secret_property(str(key)) and not isinstance(item, SecretStr)
        else item
        for key, item in value.items()
    }


# Values stay as given (str, int, bool); credential properties become ``SecretStr``.
KafkaProperties = Annotated[dict[str, Any], BeforeValidator(_mask_secret_properties)]


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Group):
    """The PostgreSQL the hub keeps its events, orders and outbox in."""

    url: SecretStr | None = Field(
        default=None,
        description="`postgresql+psycopg://user@host/db`, best without a password (the secret "
        "`database/credentials` supplies user and password); unset starts the embedded PostgreSQL",
    )
    data_dir: Path = Field(
        default=Path(".saleshub"), description="embedded database (`<data_dir>/postgres`) and local state"
    )
    pool_size: int = Field(default=16, ge=1, le=200, description="database connections per process")


class WebSettings(_Group):
    """The webhook server (`saleshub serve`)."""

    host: str = Field(default="127.0.0.1", description="address `saleshub serve` listens on")
    port: int = Field(default=8080, ge=1, le=65535, description="port `saleshub serve` listens on")
    workers: int = Field(
        default=1, ge=1, le=64, description="web worker processes (each gets the resolved settings)"
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        description="largest body accepted: webhooks over it get 413, and the decoders of every "
        "transport refuse it",
    )
    webhook_tolerance_seconds: int = Field(
        default=300, ge=1, description="accepted clock difference of `webhook-timestamp`"
    )
    retry_after_seconds: int = Field(
        default=5, ge=1, description="`Retry-After` of a 503 (database or secret store unavailable)"
    )
    access_log: bool = Field(
        default=False, description="uvicorn's per-request log (the event table is the audit trail)"
    )
    worker_timeout_seconds: int = Field(
        default=60,
        ge=5,
        description="with several workers: how long a worker may take to answer the supervisor's "
        "health check (its start included) before it is replaced",
    )


class KafkaSettings(_Group):
    """The Kafka bus: outbound canonical events, inbound order-event topics."""

    bootstrap_servers: str | None = Field(
        default=None, description="`host:port,…`; unset = Kafka off, canonical events wait in the outbox"
    )
    schema_registry_url: str | None = Field(
        default=None,
        description="set: Confluent framing (`00` + schema id), schemas registered under `<topic>-value`; "
        "unset: Avro single-object encoding (`C3 01` + CRC-64-AVRO fingerprint)",
    )
    client_config: KafkaProperties = Field(
        default_factory=dict,
        description="JSON of extra librdkafka properties for every client (`security.protocol`, "
        "`sasl.mechanism` …); SASL credentials come from the secret `kafka/sasl`",
    )
    consumer_config: KafkaProperties = Field(
        default_factory=dict,
        description="JSON of extra librdkafka properties for the consumers (`session.timeout.ms` …)",
    )
    topic_partitions: int = Field(default=6, ge=1, description="partitions of topics the hub creates")
    inbound_topics: dict[str, str] = Field(
        default_factory=dict,
        description='JSON `{"system": "topic"}`: one consumer per sales system, each reading its '
        "system's order-event topic; empty = no consumer",
    )
    consumer_group: str = Field(default="saleshub", description="consumer group shared by every hub process")
    dead_letter_topic: str = Field(
        default="integration.sales.dead_letter",
        description="where inbound records that intake refused (undecodable, unclassifiable) go, each "
        "once; unmappable ones are announced as `order_rejected` instead",
    )


class RelaySettings(_Group):
    """The outbox relay that publishes committed canonical events to Kafka."""

    batch_size: int = Field(default=2000, ge=1, description="outbox rows per relay transaction")
    threads: int = Field(
        default=2,
        ge=1,
        le=16,
        description="relays per process (`serve`, `kafka relay`); they share the outbox by lanes, one "
        "waiting on the broker while another reads the database",
    )
    message_timeout_ms: int = Field(
        default=30_000,
        ge=1000,
        description="how long a record may wait for the broker before the round counts as failed",
    )


class ProcessorSettings(_Group):
    """The processor that maps recorded events into canonical orders."""

    batch_size: int = Field(default=500, ge=1, description="recorded events per processing transaction")
    threads: int = Field(default=1, ge=1, le=64, description="processor threads per process")
    idle_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="how often an idle processor looks for work without a notification",
    )


class SecretsSettings(_Group):
    """Where the secret store reads webhook secrets and credentials (see *Secrets*)."""

    backend: Literal["env", "file", "vault"] = Field(
        default="env",
        description="`env`: `SALESHUB_SECRET_*` variables; `file`: a YAML file re-read on change; "
        "`vault`: HashiCorp Vault (or OpenBao) KV v2, see *Secrets from Vault*",
    )
    file: Path | None = Field(default=None, description="the YAML file of the `file` backend")
    vault_address: str | None = Field(
        default=None, description="Vault's URL, `https://vault.example:8200` (needed by `vault`)"
    )
    vault_namespace: str | None = Field(default=None, description="Vault Enterprise namespace, if any")
    vault_ca_file: Path | None = Field(
        default=None, description="PEM bundle of the CA that signed Vault's TLS certificate"
    )
    vault_auth: Literal["token", "approle", "kubernetes"] = Field(
        default="token",
        description="how the hub logs in: `token` (from `vault_token_file`, e.g. a Vault Agent sink), "
        "`approle` (`vault_role_id` + `vault_secret_id_file`), `kubernetes` (the pod's service "
        "account token, role `vault_role`)",
    )
    vault_auth_mount: str | None = Field(
        default=None, description="mount path of the auth method; unset = `approle` / `kubernetes`"
    )
    vault_token_file: Path | None = Field(
        default=None, description="`token` auth: file holding the token, re-read when renewal fails"
    )
    vault_token: SecretStr | None = Field(
        default=None, description="`token` auth: the token itself (development only; prefer the file)"
    )
    vault_role: str | None = Field(
        default=None, description="`kubernetes` auth: the Vault role the pod's service account logs in as"
    )
    vault_role_id: str | None = Field(default=None, description="`approle` auth: the role id")
    vault_secret_id_file: Path | None = Field(
        default=None, description="`approle` auth: file holding the secret id (re-read on each login)"
    )
    vault_secret_id: SecretStr | None = Field(
        default=None, description="`approle` auth: the secret id itself (development only)"
    )
    vault_service_account_token_file: Path = Field(
        default=Path("/var/run/secrets/kubernetes.io/serviceaccount/token"),
        description="`kubernetes` auth: the pod's service account token",
    )
    vault_kv_mount: str = Field(default="secret", description="mount path of the KV v2 secrets engine")
    vault_path: str = Field(
        default="saleshub",
        description="KV path under which the hub's secrets live (`<path>/webhook/pyxis`, "
        "`<path>/kafka/sasl` …)",
    )
    vault_database_mount: str = Field(
        default="database", description="mount path of the database secrets engine"
    )
    vault_database_role: str | None = Field(
        default=None,
        description="set: PostgreSQL user and password are leased from `<database mount>/creds/<role>`, "
        "renewed, and replaced before the lease ends; unset: the KV secret `database/credentials`",
    )
    vault_cache_seconds: float = Field(
        default=30,
        gt=0,
        description="how often a KV secret is read again: a rotated webhook secret is accepted, and a "
        "removed one refused, within this time",
    )
    vault_outage_grace_seconds: float = Field(
        default=900,
        ge=0,
        description="while Vault is unreachable, cached secrets are still used for this long after "
        "they were last read",
    )
    vault_timeout_seconds: int = Field(default=5, ge=1, description="timeout of one request to Vault")
    vault_startup_seconds: float = Field(
        default=120,
        ge=0,
        description="how long the start waits for Vault (retrying with backoff) before it fails",
    )

    @property
    def leases_database(self) -> bool:
        """Whether the runtime's database user is leased from Vault (then it makes no schema change)."""
        return self.backend == "vault" and bool(self.vault_database_role)


class TelemetrySettings(_Group):
    """Traces and metrics of every stage (receive, record, process, store, publish, reconcile)."""

    mode: Literal["off", "datadog"] = Field(
        default="off",
        description="`off`: no telemetry (ddtrace is not even imported); `datadog`: traces to the "
        "Datadog agent (ddtrace), metrics through DogStatsD",
    )
    agent_url: str | None = Field(
        default=None,
        description="the agent's trace intake; `DD_TRACE_AGENT_URL` wins; unset: ddtrace's default "
        "`http://localhost:8126`",
    )
    statsd_host: str = Field(default="localhost", description="the DogStatsD server (the agent) host")
    statsd_port: int = Field(default=8125, ge=1, le=65535, description="the DogStatsD server's UDP port")
    service: str = Field(default="saleshub", description="unified service tag `service`; `DD_SERVICE` wins")
    env: str | None = Field(
        default=None, description="unified service tag `env` (`prod`, `staging` …); `DD_ENV` wins"
    )
    version: str | None = Field(
        default=None,
        description="unified service tag `version`; `DD_VERSION` wins; unset: the hub's package version",
    )
    vitals_interval_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="how often `serve`, `process` and `kafka relay` report the processing queue and "
        "outbox backlog gauges",
    )


class SystemPollSettings(_Group):
    """How one source system is polled: where, how often, how fast, how patiently."""

    base_url: str = Field(description="the source API's root URL (`https://erp.example.com`)")
    interval_seconds: float | None = Field(
        default=None, gt=0, description="run every N seconds (default 60 when no `cron` is given)"
    )
    cron: str | None = Field(
        default=None, description="run on this crontab schedule instead (`*/5 * * * *`), hub-local time"
    )
    page_size: int = Field(default=500, ge=1, le=10_000, description="records per page asked for")
    overlap_seconds: float = Field(
        default=300,
        ge=0,
        description="each run starts this far before the cursor, to catch rows committed late",
    )
    timeout_seconds: float = Field(default=30, gt=0, description="per request (connect, read, write)")
    requests_per_second: float = Field(default=5, gt=0, description="at most this many requests per second")
    attempts: int = Field(
        default=5, ge=1, le=20, description="tries per request (connection error, 5xx, 429)"
    )
    backoff_seconds: float = Field(default=1, gt=0, description="first retry wait; doubles, with jitter")
    max_backoff_seconds: float = Field(default=60, gt=0, description="longest wait between tries")
    pause_after_failures: int = Field(
        default=5, ge=1, description="failed runs in a row after which the poller pauses itself"
    )
    auth: Literal["basic", "bearer", "none"] = Field(
        default="basic",
        description="`basic`: secret `source/<system>` username and password; `bearer`: secret "
        "`source/<system>/token`",
    )

    @model_validator(mode="after")
    def _one_schedule(self) -> SystemPollSettings:
        if self.interval_seconds is not None and self.cron is not None:
            raise ValueError("give interval_seconds or cron, not both")
        return self

    def trigger_description(self) -> str:
        """The schedule in words (``every 60 s`` or ``cron */5 * * * *``)."""
        return f"cron {self.cron}" if self.cron else f"every {self.interval_seconds or 60:g} s"


class PollerSettings(_Group):
    """The pollers of source APIs (the ERP, Tempo): one entry per polled system."""

    systems: dict[str, SystemPollSettings] = Field(
        default_factory=dict,
        description='JSON `{"erp": {"base_url": "https://…", "interval_seconds": 60}}`: the systems '
        "`saleshub serve` polls; per system also `cron`, `page_size` (500), `overlap_seconds` (300), "
        "`timeout_seconds` (30), `requests_per_second` (5), `attempts` (5), `backoff_seconds` (1), "
        "`max_backoff_seconds` (60), `pause_after_failures` (5), `auth` (`basic`, `bearer`, `none`)",
    )
    reconcile_at: str = Field(
        default="02:30",
        pattern=r"^(off|([01][0-9]|2[0-3]):[0-5][0-9])$",
        description="`HH:MM` UTC: `saleshub serve` reconciles the previous day of every polled system "
        "against its API then; `off`: never",
    )

    def reconcile_time(self) -> tuple[int, int] | None:
        """``reconcile_at`` as ``(hour, minute)`` UTC, or ``None`` when it is ``off``."""
        if self.reconcile_at == "off":
            return None
        hour, minute = self.reconcile_at.split(":")
        return int(hour), int(minute)


class PrivacySettings(_Group):
    """Personal data at rest: the key that wraps the data keys, and how long a data key is cached."""

    keys: Literal["local", "vault"] = Field(
        default="local",
        description="`local`: data keys wrapped by the key file `key_file`; `vault`: wrapped by the "
        "transit key `vault_transit_key` of the Vault the secret store logs in to (`secrets.backend` "
        "`vault`)",
    )
    key_file: Path | None = Field(
        default=None,
        description="`local`: the master key file (created with mode 600 on first use) "
        "[default: `<data_dir>/master.key`]",
    )
    vault_transit_mount: str = Field(default="transit", description="mount path of Vault's transit engine")
    vault_transit_key: str = Field(
        default="saleshub-personal-data", description="the transit key that wraps the data keys"
    )
    key_cache_seconds: float = Field(
        default=300,
        gt=0,
        description="an unwrapped data key stays in memory this long; also how long the hub keeps "
        "working on cached keys while Vault is unreachable",
    )


class RetentionSettings(_Group):
    """How long `saleshub db retention` keeps raw bodies, personal data and order facts."""

    raw_body_days: int = Field(
        default=180, ge=1, description="raw bodies are emptied this many days after receipt (audit rows stay)"
    )
    raw_body_days_by_system: dict[str, int] = Field(
        default_factory=dict,
        description='system → its own `raw_body_days`, as JSON (`{"pyxis": 30}`)',
    )
    personal_years: int = Field(
        default=3,
        ge=1,
        description="a closed order's (`COMPLETED`, `CANCELLED`) personal data is crypto-shredded this "
        "many years after its last change",
    )
    facts_years: int = Field(
        default=10,
        ge=1,
        description="a closed order (facts, versions) is deleted this many years after its last change, "
        "at least `personal_years`; its events stay",
    )
    outbox_days: int = Field(
        default=7, ge=1, description="outbox rows are deleted this many days after they were published"
    )
    batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="rows or orders per retention transaction"
    )

    @field_validator("raw_body_days_by_system")
    @classmethod
    def _positive_days(cls, value: dict[str, int]) -> dict[str, int]:
        short = sorted(system for system, days in value.items() if days < 1)
        if short:
            raise ValueError(f"raw bodies are kept at least 1 day; not for {', '.join(short)}")
        return value

    @model_validator(mode="after")
    def _facts_outlive_personal_data(self) -> RetentionSettings:
        if self.facts_years < self.personal_years:
            raise ValueError(
                f"facts_years ({self.facts_years}) must be at least personal_years ({self.personal_years}): "
                "an order is deleted only after its personal data is destroyed"
            )
        return self


ROLES: Final = ("viewer", "operator", "steward", "admin")


class ConsoleSettings(_Group):
    """The operators' web console and API, behind the organisation's OpenID Connect provider."""

    issuer: str | None = Field(
        default=None,
        description="the OIDC provider's issuer URL (discovery at "
        "`<issuer>/.well-known/openid-configuration`); unset: the console and `/api/v1` "
        "are off (webhooks work)",
    )
    client_id: str | None = Field(
        default=None,
        description="the console's client id at the provider (the client secret is the secret "
        "`console/client_secret`)",
    )
    audience: str | None = Field(
        default=None, description="the `aud` bearer tokens of scripts must carry [default: the client id]"
    )
    groups_claim: str = Field(default="groups", description="the token claim that lists the person's groups")
    roles: dict[str, str] = Field(
        default_factory=dict,
        description="group → role (`viewer`, `operator`, `steward`, `admin`), as JSON; a person gets the "
        "highest role of their groups, none: refused",
    )
    public_url: str | None = Field(
        default=None,
        description="the console's URL as browsers reach it (for the provider's redirect) [default: "
        "from the request]",
    )
    session_minutes: int = Field(
        default=480, ge=1, description="a console session ends this long after login"
    )
    leeway_seconds: int = Field(
        default=30, ge=0, le=300, description="accepted clock difference on token `exp`/`iat`/`nbf`"
    )
    insecure_cookies: bool = Field(
        default=False,
        description="drop the `Secure` flag of the session cookie (only for a console on plain HTTP on "
        "localhost, as in tests)",
    )

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted({role for role in value.values() if role not in ROLES})
        if unknown:
            raise ValueError(f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}")
        return value


class Settings(BaseSettings):
    """Everything an operator can configure, in one group per part of the hub."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings, description="PostgreSQL")
    web: WebSettings = Field(default_factory=WebSettings, description="the webhook server")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings, description="the Kafka bus")
    relay: RelaySettings = Field(default_factory=RelaySettings, description="the outbox relay")
    processor: ProcessorSettings = Field(default_factory=ProcessorSettings, description="the processor")
    secrets: SecretsSettings = Field(default_factory=SecretsSettings, description="the secret store")
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings, description="telemetry")
    pollers: PollerSettings = Field(default_factory=PollerSettings, description="source-API pollers")
    console: ConsoleSettings = Field(
        default_factory=ConsoleSettings, description="the operators' console and API"
    )
    privacy: PrivacySettings = Field(default_factory=PrivacySettings, description="personal data at rest")
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings, description="what `saleshub db retention` removes, and when"
    )
    mappings_dir: Path = Field(default=Path("mappings"), description="mapping files and crosswalks")
    samples_dir: Path = Field(default=Path("contracts/samples"), description="golden samples")
    contracts_dir: Path = Field(
        default=Path("contracts/avro/events"),
        description="committed event schema versions (to frame outbox rows written by an older hub)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="`DEBUG` … `ERROR`, for the hub and uvicorn"
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`text`: one readable line per record; `json`: one JSON object per line with "
        "`dd.trace_id`/`dd.span_id` for Datadog; personal data is masked in both",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, environment, ``.env``, then the YAML file named by ``SALESHUB_CONFIG_FILE``."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        config_file = os.environ.get(CONFIG_FILE_VARIABLE)
        if config_file:
            if not Path(config_file).is_file():
                raise ConfigurationError(f"{CONFIG_FILE_VARIABLE}={config_file}: no such file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @model_validator(mode="before")
    @classmethod
    def _known_names(cls, data: Any) -> Any:
        # Unknown names would be ignored silently, and a renamed or mistyped setting (the flat
        # SALESHUB_DATABASE_URL of older hubs, a typo) would then leave the hub on its defaults.
        unknown = [f"{name} (argument or config file)" for name in data if name not in cls.model_fields]
        unknown += unknown_environment_names(os.environ)
        if unknown:
            raise ConfigurationError(f"unknown settings: {'; '.join(unknown)}")
        return data


def known_environment_names() -> set[str]:
    """Every ``SALESHUB_*`` variable the settings read (whole groups included, as JSON)."""
    names = {CONFIG_FILE_VARIABLE}
    for name, field in Settings.model_fields.items():
        names.add(f"{ENV_PREFIX}{name.upper()}")
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            names.update(f"{ENV_PREFIX}{name.upper()}__{inner.upper()}" for inner in group.model_fields)
    return names


def unknown_environment_names(environ: Mapping[str, str]) -> list[str]:
    """``SALESHUB_*`` variables that are neither settings nor secrets, each with a suggestion."""
    known = known_environment_names()
    found = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper.startswith(SECRET_ENV_PREFIX):
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
        found.append(f"{name} is not a setting" + (f"; did you mean {close[0]}?" if close else ""))
    return found


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "`{}`"
    return f"`{value}`"


def settings_table() -> str:
    """The README's configuration table: one row per setting, from the model's descriptions."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub_name, sub_field in annotation.model_fields.items():
                variable = f"{ENV_PREFIX}{name.upper()}__{sub_name.upper()}"
                rows.append(f"| `{variable}` | {_default(sub_field)} | {sub_field.description} |")
        else:
            rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {_default(field)} | {field.description} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
