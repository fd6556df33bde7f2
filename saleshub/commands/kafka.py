"""``saleshub kafka relay|consume|topics``: run the outbox relay or the consumer alone, create topics.

``serve`` already runs both when Kafka is configured; these commands let an operator run more relay
or consumer processes (they share the work: relays by outbox lanes, consumers by partitions), drain
a backlog by hand, or create the topics ahead of time.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import typer
from confluent_kafka import KafkaException

from saleshub.commands.common import fail, wait_for_signal
from saleshub.commands.health import HealthPortOption, health_port
from saleshub.console import out
from saleshub.errors import SalesHubError
from saleshub.platform.kafka_clients import ensure_topics
from saleshub.platform.logs import configure_logging
from saleshub.platform.secrets import secret_store_from_settings
from saleshub.platform.settings import Settings
from saleshub.runtime import HubRuntime, tune_collector
from saleshub.services import Services, build_relay, outbound_topics

__all__ = ["consume", "kafka_app", "relay", "topics"]

kafka_app = typer.Typer(help="Publish the outbox to Kafka, consume order events, create topics.")


def _hub() -> HubRuntime:
    settings = Settings()
    configure_logging(settings)
    if not settings.kafka.bootstrap_servers:
        raise fail("Kafka is not configured: set SALESHUB_KAFKA__BOOTSTRAP_SERVERS")
    try:
        hub = HubRuntime.open(settings)
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    tune_collector()
    return hub


@kafka_app.command("relay")
def relay(
    drain: Annotated[bool, typer.Option("--drain", help="publish the backlog, then exit")] = False,
    health: HealthPortOption = None,
) -> None:
    """Publish outbox events to Kafka until stopped (several relay processes share the work)."""
    hub = _hub()
    try:
        if drain:
            _drain(hub)
            return
        services = Services.start(hub, relay=True)
        servers = hub.settings.kafka.bootstrap_servers
        out.print(f"outbox relay ({len(services.relays)} threads) publishing to {servers}; Ctrl+C stops")
        with health_port(health, hub, services):
            wait_for_signal()
        services.stop()
    finally:
        hub.close()


def _drain(hub: HubRuntime) -> None:
    publishers = [build_relay(hub) for _ in range(hub.settings.relay.threads)]
    try:
        with ThreadPoolExecutor(len(publishers)) as pool:
            published = sum(pool.map(lambda publisher: publisher.drain(timeout=3600), publishers))
    except SalesHubError as exc:
        raise fail(
            f"the outbox was not drained to {hub.settings.kafka.bootstrap_servers}: {exc}. "
            "Nothing is lost: the events wait in the outbox (`saleshub status` shows the backlog)."
        ) from None
    finally:
        for publisher in publishers:
            publisher.close()
    out.print(f"published {published} events")


@kafka_app.command("consume")
def consume(health: HealthPortOption = None) -> None:
    """Consume each system's order-event topic into the hub until stopped (a consumer-group member).

    The consumers record; processors (`saleshub serve` or `saleshub process`) map the events.
    """
    hub = _hub()
    try:
        kafka = hub.settings.kafka
        if not kafka.inbound_topics:
            raise fail('no topic to consume: set SALESHUB_KAFKA__INBOUND_TOPICS=\'{"pyxis": "topic"}\'')
        try:
            services = Services.start(hub, consumer=True)
        except SalesHubError as exc:
            raise fail(str(exc)) from None
        topics = ", ".join(f"{topic} ({system})" for system, topic in sorted(kafka.inbound_topics.items()))
        out.print(f"consuming {topics} as group {kafka.consumer_group}")
        with health_port(health, hub, services):
            wait_for_signal()
        services.stop()
    finally:
        hub.close()


@kafka_app.command("topics")
def topics() -> None:
    """Create the hub's outbound topics and the dead-letter topic where missing."""
    settings = Settings()
    if not settings.kafka.bootstrap_servers:
        raise fail("Kafka is not configured: set SALESHUB_KAFKA__BOOTSTRAP_SERVERS")
    wanted = outbound_topics(settings)
    try:
        created = ensure_topics(settings, secret_store_from_settings(settings), wanted)
    except KafkaException as exc:
        raise fail(f"{settings.kafka.bootstrap_servers}: {exc}") from None
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    for topic in wanted:
        out.print(f"{topic}: {'created' if topic in created else 'exists'}")
