"""The background work of a running hub: processors, outbox relays, the inbound consumer, the pollers.

``saleshub serve`` starts the processors, the relays and the consumer when Kafka is configured, and
the pollers' scheduler when ``pollers.systems`` names any (with the nightly reconciliation of those
systems against their APIs at ``pollers.reconcile_at``), and the sealing of the audit trail's ended
hours (``saleshub.actions.audit_trail``, every few minutes), as threads beside the web workers;
``saleshub process``, ``saleshub kafka relay`` and ``saleshub kafka consume`` run one kind alone, so
an operator can scale each in processes of its own (``saleshub poll run`` polls once, by hand).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from apscheduler.schedulers.background import BackgroundScheduler
from confluent_kafka import Consumer, KafkaException, Producer

from canonical.events import EventKind
from saleshub.actions.audit_trail import schedule_sealing
from saleshub.actions.reconciliation_wiring import schedule_nightly
from saleshub.errors import ConfigurationError
from saleshub.platform.kafka_clients import consumer_config, ensure_topics, producer_config
from saleshub.platform.secrets import SecretStore
from saleshub.platform.settings import Settings
from saleshub.process.vitals import Vitals
from saleshub.publish.framing import Framing, RegistryFraming, SingleObjectFraming
from saleshub.publish.relay import OutboxRelay
from saleshub.receive.kafka_consumer import OrderEventConsumer
from saleshub.receive.polling import start_pollers
from saleshub.runtime import HubRuntime

__all__ = ["Services", "build_consumers", "build_relay", "framing_from_settings", "outbound_topics"]

log = logging.getLogger(__name__)


def framing_from_settings(settings: Settings) -> Framing:
    """Registry framing when a registry URL is set, Avro single-object encoding otherwise."""
    if settings.kafka.schema_registry_url:
        return RegistryFraming(settings.kafka.schema_registry_url)
    return SingleObjectFraming()


def outbound_topics(settings: Settings) -> list[str]:
    """Every topic the hub writes: the event topics (one per ``EventKind``) and the dead-letter topic."""
    return [kind.topic for kind in EventKind] + [settings.kafka.dead_letter_topic]


def _create_topics(settings: Settings, secrets: SecretStore) -> None:
    try:
        ensure_topics(settings, secrets, outbound_topics(settings))
    except KafkaException as exc:  # the broker may be down: the relay waits for it anyway
        log.warning("could not check the Kafka topics (%s); they are created on first use if allowed", exc)


def build_relay(hub: HubRuntime) -> OutboxRelay:
    """The outbox relay of ``hub``'s settings."""
    settings = hub.settings
    return OutboxRelay(
        hub.database.engine,
        lambda: Producer(producer_config(settings, hub.secrets)),
        framing_from_settings(settings),
        hub.schemas,
        batch_size=settings.relay.batch_size,
        probe_timeout=min(2.0, settings.relay.message_timeout_ms / 1000),
        delivery_timeout=settings.relay.message_timeout_ms / 1000,
        telemetry=hub.telemetry,
    )


def build_consumers(hub: HubRuntime) -> list[OrderEventConsumer]:
    """One order-event consumer per system of ``kafka.inbound_topics`` (none when it is empty)."""
    settings = hub.settings
    unknown = sorted(set(settings.kafka.inbound_topics) - set(hub.adapters))
    if unknown:
        raise ConfigurationError(
            f"SALESHUB_KAFKA__INBOUND_TOPICS names {', '.join(unknown)}, which no adapter handles; "
            f"known systems: {', '.join(sorted(hub.adapters))}"
        )
    return [
        OrderEventConsumer(
            hub.recorder,
            hub.adapters,
            Consumer(consumer_config(settings, hub.secrets, f"saleshub-consumer-{system}")),
            Producer(producer_config(settings, hub.secrets, f"saleshub-dead-letters-{system}")),
            system=system,
            topic=topic,
            dead_letter_topic=settings.kafka.dead_letter_topic,
            telemetry=hub.telemetry,
        )
        for system, topic in sorted(settings.kafka.inbound_topics.items())
    ]


@dataclass
class Services:
    """Background threads running processors, relays (``relay.threads``), consumers, pollers, the
    audit trail's sealing and, with telemetry on, the vital-signs gauges (``saleshub.process.vitals``)
    until ``stop``."""

    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    relays: list[OutboxRelay] = field(default_factory=list)
    consumers: list[OrderEventConsumer] = field(default_factory=list)
    scheduler: BackgroundScheduler | None = None

    @classmethod
    def start(
        cls,
        hub: HubRuntime,
        *,
        processors: int = 0,
        relay: bool = False,
        consumer: bool = False,
        pollers: bool = False,
        sealing: bool = False,
    ) -> Services:
        """Start the requested parts (creating the Kafka topics first if a Kafka part is asked for)."""
        services = cls()
        if processors:
            hub.follow_mappings("processor")  # processors map with the deployed revision, as it changes
        for number in range(processors):
            run = functools.partial(
                hub.processor().run, idle_seconds=hub.settings.processor.idle_poll_seconds
            )
            services._spawn(f"processor-{number}", run)
        if relay or consumer:
            _create_topics(hub.settings, hub.secrets)
        if relay:
            for number in range(hub.settings.relay.threads):
                publisher = build_relay(hub)
                services.relays.append(publisher)
                services._spawn(f"outbox-relay-{number}", publisher.run)
        if consumer:
            services.consumers = build_consumers(hub)
            for inbound in services.consumers:
                services._spawn(f"kafka-consumer-{inbound.system}", inbound.run)
        if pollers:
            services.scheduler = start_pollers(hub, services.stop_event)
            schedule_nightly(hub, services.scheduler)
        if sealing:
            if services.scheduler is None:
                services.scheduler = BackgroundScheduler()
                services.scheduler.start()
            schedule_sealing(hub.database.engine, hub.outbox, services.scheduler, services.stop_event)
        if hub.telemetry.enabled and (processors or relay):
            interval = hub.settings.telemetry.vitals_interval_seconds
            services._spawn("vitals", Vitals(hub.database.engine, hub.telemetry, interval).run)
        return services

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(self.stop_event,), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the threads after their current round, then close the clients."""
        self.stop_event.set()
        if self.scheduler is not None:  # a running poll stops after its page
            self.scheduler.shutdown(wait=True)
        for thread in self.threads:
            thread.join(timeout)
        for publisher in self.relays:
            publisher.close()
        for inbound in self.consumers:
            inbound.close()
