"""Kafka client configuration from the settings and the secret store, and creation of the hub's topics.

Every client gets ``kafka.bootstrap_servers`` and ``kafka.client_config`` (security protocol, SASL
mechanism …) with the SASL credentials of the secret ``kafka/sasl`` (``sasl.username``,
``sasl.password``) merged in; credentials are unwrapped from ``SecretStr`` only here, into the dict
handed to librdkafka. The
producer is idempotent with ``acks=all`` (no loss, no duplicate from a producer retry, per-partition
order kept); the consumer stores offsets only when told to (``enable.auto.offset.store=false``),
so an offset is committed only after the records before it are in the database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from pydantic import SecretStr

from saleshub.errors import ConfigurationError
from saleshub.platform.secrets import SecretStore
from saleshub.platform.settings import Settings

__all__ = ["admin_config", "consumer_config", "ensure_topics", "producer_config"]

log = logging.getLogger(__name__)


def _plain(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value.get_secret_value() if isinstance(value, SecretStr) else value
        for key, value in properties.items()
    }


def _base(settings: Settings, secrets: SecretStore, client_id: str) -> dict[str, Any]:
    if not settings.kafka.bootstrap_servers:
        raise ConfigurationError("Kafka is not configured: set SALESHUB_KAFKA__BOOTSTRAP_SERVERS")
    config = {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "client.id": client_id,
        # librdkafka's own log lines (connection refused …) go to Python logging, not raw stderr.
        "logger": logging.getLogger(f"saleshub.kafka.{client_id}"),
        **_plain(settings.kafka.client_config),
    }
    sasl = secrets.credentials("kafka/sasl")
    if sasl is not None:
        config["sasl.username"] = sasl.username
        config["sasl.password"] = sasl.password.get_secret_value()
    return config


def producer_config(
    settings: Settings, secrets: SecretStore, client_id: str = "saleshub-relay"
) -> dict[str, Any]:
    """An idempotent, ``acks=all`` producer that fails a message after ``relay.message_timeout_ms``."""
    return {
        **_base(settings, secrets, client_id),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": settings.relay.message_timeout_ms,
    }


def consumer_config(
    settings: Settings, secrets: SecretStore, client_id: str = "saleshub-consumer"
) -> dict[str, Any]:
    """A group consumer whose offsets are stored by the hub after each database commit."""
    return {
        **_base(settings, secrets, client_id),
        "group.id": settings.kafka.consumer_group,
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # A source topic created after the hub started is picked up within 30 s, not librdkafka's 5 min.
        "topic.metadata.refresh.interval.ms": 30_000,
        **_plain(settings.kafka.consumer_config),
    }


def admin_config(settings: Settings, secrets: SecretStore) -> dict[str, Any]:
    """An admin client's configuration."""
    return _base(settings, secrets, "saleshub-admin")


def ensure_topics(
    settings: Settings, secrets: SecretStore, topics: Iterable[str], timeout: float = 10.0
) -> list[str]:
    """Create the missing ``topics`` (``kafka.topic_partitions`` each); return the ones created."""
    admin = AdminClient(admin_config(settings, secrets))
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=settings.kafka.topic_partitions) for topic in topics],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    created = []
    for topic, future in futures.items():
        try:
            future.result(timeout)
            created.append(topic)
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise
    if created:
        log.info("created Kafka topics: %s", ", ".join(sorted(created)))
    return created
