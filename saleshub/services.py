"""The Kafka side of a running hub: the outbox relay and the inbound consumer, built from the settings.

``saleshub serve`` starts both as background threads when ``kafka_bootstrap_servers`` is set;
``saleshub kafka relay`` and ``saleshub kafka consume`` run one of them alone, so an operator can run
several relay or consumer processes beside the web workers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Producer

from canonical.events import EventKind
from saleshub.platform.kafka_clients import consumer_config, ensure_topics, producer_config
from saleshub.platform.settings import Settings
from saleshub.publish.framing import Framing, RegistryFraming, SingleObjectFraming
from saleshub.publish.relay import OutboxRelay
from saleshub.receive.kafka_consumer import OrderEventConsumer
from saleshub.runtime import HubRuntime

__all__ = ["KafkaServices", "build_consumer", "build_relay", "framing_from_settings", "outbound_topics"]

log = logging.getLogger(__name__)


def framing_from_settings(settings: Settings) -> Framing:
    """Registry framing when a registry URL is set, Avro single-object encoding otherwise."""
    if settings.kafka_schema_registry_url:
        return RegistryFraming(settings.kafka_schema_registry_url)
    return SingleObjectFraming()


def outbound_topics(settings: Settings) -> list[str]:
    """Every topic the hub writes: the four event topics and the dead-letter topic."""
    return [kind.topic for kind in EventKind] + [settings.kafka_dead_letter_topic]


def _create_topics(settings: Settings) -> None:
    try:
        ensure_topics(settings, outbound_topics(settings))
    except KafkaException as exc:  # the broker may be down: the relay waits for it anyway
        log.warning("could not check the Kafka topics (%s); they are created on first use if allowed", exc)


def build_relay(hub: HubRuntime) -> OutboxRelay:
    """The outbox relay of ``hub``'s settings."""
    settings = hub.settings
    return OutboxRelay(
        hub.database.engine,
        lambda: Producer(producer_config(settings)),
        framing_from_settings(settings),
        hub.schemas,
        batch_size=settings.relay_batch_size,
        probe_timeout=min(2.0, settings.relay_message_timeout_ms / 1000),
        delivery_timeout=settings.relay_message_timeout_ms / 1000,
    )


def build_consumer(hub: HubRuntime) -> OrderEventConsumer | None:
    """The Pyxis order-event consumer, or ``None`` when no topic is configured."""
    settings = hub.settings
    if not settings.kafka_pyxis_topic:
        return None
    return OrderEventConsumer(
        hub.pipeline,
        Consumer(consumer_config(settings)),
        Producer(producer_config(settings, "saleshub-dead-letters")),
        system="pyxis",
        topic=settings.kafka_pyxis_topic,
        dead_letter_topic=settings.kafka_dead_letter_topic,
    )


@dataclass
class KafkaServices:
    """Background threads running the relays (``relay_threads``) and the consumer until ``stop``."""

    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    relays: list[OutboxRelay] = field(default_factory=list)
    consumer: OrderEventConsumer | None = None

    @classmethod
    def start(cls, hub: HubRuntime, *, relay: bool = True, consumer: bool = True) -> KafkaServices:
        """Create the topics if missing and start the requested parts."""
        _create_topics(hub.settings)
        services = cls()
        if relay:
            for number in range(hub.settings.relay_threads):
                publisher = build_relay(hub)
                services.relays.append(publisher)
                services._spawn(f"outbox-relay-{number}", publisher.run)
        if consumer:
            services.consumer = build_consumer(hub)
            if services.consumer is not None:
                services._spawn("kafka-consumer", services.consumer.run)
        return services

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(self.stop_event,), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the threads after their current round, then close the clients."""
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout)
        for publisher in self.relays:
            publisher.close()
        if self.consumer is not None:
            self.consumer.close()
