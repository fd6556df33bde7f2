"""The hub's settings: one pydantic-settings model, read from ``SALESHUB_*`` environment variables.

Sources, first wins: constructor arguments, environment variables (``SALESHUB_DATABASE_URL`` …), an
optional ``.env`` file in the working directory, an optional YAML file named by
``SALESHUB_CONFIG_FILE`` (keys are the field names below, lower case), then the defaults.

With no ``database_url`` the hub runs an embedded PostgreSQL (the ``pgserver`` package) whose data
lives under ``data_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from saleshub.errors import ConfigurationError

__all__ = ["CONFIG_FILE_VARIABLE", "Settings"]

CONFIG_FILE_VARIABLE = "SALESHUB_CONFIG_FILE"


class Settings(BaseSettings):
    """Everything an operator can configure; each field is documented in the README."""

    model_config = SettingsConfigDict(env_prefix="SALESHUB_", env_file=".env", extra="ignore")

    mappings_dir: Path = Field(default=Path("mappings"), description="mapping files and crosswalks")
    samples_dir: Path = Field(
        default=Path("contracts/samples"), description="golden sample payloads with expected output"
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql+psycopg://…); unset = embedded PostgreSQL under data_dir",
    )
    data_dir: Path = Field(default=Path(".saleshub"), description="embedded database and local state")
    db_pool_size: int = Field(default=16, ge=1, le=200, description="database connections per process")
    host: str = Field(default="127.0.0.1", description="address `saleshub serve` listens on")
    port: int = Field(default=8080, ge=1, le=65535, description="port `saleshub serve` listens on")
    workers: int = Field(default=1, ge=1, le=64, description="web worker processes")
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="largest webhook body accepted (413 above)"
    )
    webhook_tolerance_seconds: int = Field(
        default=300, ge=1, description="accepted clock difference of webhook-timestamp"
    )
    secrets_backend: Literal["env", "file"] = Field(
        default="env", description="where webhook secrets come from"
    )
    secrets_file: Path | None = Field(
        default=None, description="YAML file of secrets when secrets_backend=file"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="log level of the hub and uvicorn"
    )
    access_log: bool = Field(default=False, description="uvicorn's per-request access log")
    write_linger_ms: float = Field(
        default=0.0,
        ge=0,
        le=50,
        description="under concurrent load, how long the webhook writer waits to fill a batch",
    )
    thread_switch_interval_ms: float = Field(
        default=0.5,
        gt=0,
        le=100,
        description="how long a thread of a server worker may hold the GIL while another waits",
    )
    retry_after_seconds: int = Field(
        default=5, ge=1, description="Retry-After sent with 503 when the database is down"
    )
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka bootstrap servers (host:port,…); unset = Kafka off, events wait in the outbox",
    )
    kafka_schema_registry_url: str | None = Field(
        default=None,
        description="schema registry URL; set = Confluent framing, unset = Avro single-object encoding",
    )
    kafka_client_config: dict[str, Any] = Field(
        default_factory=dict,
        description="extra librdkafka properties for every Kafka client (JSON), e.g. security.protocol",
    )
    kafka_consumer_config: dict[str, Any] = Field(
        default_factory=dict, description="extra librdkafka properties for the inbound consumer (JSON)"
    )
    kafka_topic_partitions: int = Field(
        default=6, ge=1, description="partitions of the outbound topics when the hub creates them"
    )
    kafka_pyxis_topic: str | None = Field(
        default=None, description="Pyxis order-event topic to consume; unset = no consumer"
    )
    kafka_consumer_group: str = Field(default="saleshub", description="consumer group of the hub's workers")
    kafka_dead_letter_topic: str = Field(
        default="integration.sales.dead_letter",
        description="where inbound records that cannot be decoded or mapped are forwarded",
    )
    relay_batch_size: int = Field(default=2000, ge=1, description="outbox rows per relay transaction")
    relay_threads: int = Field(
        default=2,
        ge=1,
        le=16,
        description="relays per process; they share the outbox by lanes, one waits on the broker "
        "while another reads the database",
    )
    relay_message_timeout_ms: int = Field(
        default=30_000, ge=1000, description="how long the relay waits for a broker acknowledgement"
    )
    contracts_dir: Path = Field(
        default=Path("contracts/avro/events"),
        description="committed event schema versions, to frame outbox rows written by older versions",
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
