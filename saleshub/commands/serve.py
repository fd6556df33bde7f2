"""``saleshub serve`` and ``saleshub status``: run the hub, and tell an operator how it stands.

``serve`` loads and checks the mappings, opens the database (starting the embedded PostgreSQL when
no URL is configured), migrates it, creates the event partitions, says what it runs on and which
systems have webhook secrets, starts the outbox relay and the Pyxis topic consumer when Kafka is
configured (in this process, beside the web workers), then serves HTTP with uvicorn. With several
workers each worker process opens its own pool on the same database (the embedded server's URL is
handed to them). Without Kafka, canonical events are kept in the outbox, and both ``serve`` and
``status`` say so.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
import uvicorn
from rich.table import Table

from saleshub.commands.common import database, fail
from saleshub.console import err, out
from saleshub.errors import ConfigurationError, SalesHubError
from saleshub.platform.settings import Settings
from saleshub.runtime import HubRuntime, tune_collector, tune_thread_switching
from saleshub.services import KafkaServices
from saleshub.store import queries
from saleshub.store.migrate import current_revision, head_revision
from saleshub.store.outbox import Backlog, BrokerState, backlog, broker_state
from saleshub.store.partitions import list_partitions

__all__ = ["serve", "status"]


def _announce(hub: HubRuntime, host: str, port: int, workers: int) -> None:
    out.print(f"[bold]saleshub[/bold] on {hub.database.description}")
    out.print(f"mappings: {', '.join(m.identity.label for m in hub.catalog)}")
    for system in sorted(hub.adapters):
        try:
            count = len(hub.secrets.webhook_keys(system))
        except ConfigurationError as exc:
            raise fail(str(exc)) from None
        if count:
            out.print(f"webhooks: POST http://{host}:{port}/webhooks/{system} ({count} secret(s))")
        else:
            err.print(
                f"[yellow]webhooks for {system} are refused (401): no secret; set "
                f"SALESHUB_WEBHOOK_SECRET_{system.upper()}[/yellow]"
            )
    settings = hub.settings
    if settings.kafka_bootstrap_servers:
        framing = "schema registry" if settings.kafka_schema_registry_url else "Avro single-object encoding"
        out.print(f"Kafka: publishing to {settings.kafka_bootstrap_servers} ({framing})")
        if settings.kafka_pyxis_topic:
            out.print(
                f"Kafka: consuming {settings.kafka_pyxis_topic} as group {settings.kafka_consumer_group}"
            )
    else:
        err.print(_NO_KAFKA)
    out.print(f"serving with {workers} worker(s); Ctrl+C stops")


_NO_KAFKA = (
    "[yellow]Kafka: not configured (SALESHUB_KAFKA_BOOTSTRAP_SERVERS); canonical events are kept in "
    "the outbox and published once Kafka is configured[/yellow]"
)


def serve(
    host: Annotated[str | None, typer.Option(help="listen address [default: SALESHUB_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="listen port [default: SALESHUB_PORT]")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes [default: SALESHUB_WORKERS]")] = None,
) -> None:
    """Run the hub: migrate, then receive webhooks (embedded PostgreSQL unless a URL is set)."""
    settings = Settings()
    host, port, workers = host or settings.host, port or settings.port, workers or settings.workers
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # pgserver logs every initdb/pg_ctl command line at INFO and Alembic logs each readiness probe's
    # revision check; neither helps an operator, both drown what does.
    for chatty in ("pgserver", "alembic.runtime.migration"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        hub = HubRuntime.open(settings, migrate=True)
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    _announce(hub, host, port, workers)
    tune_collector()
    tune_thread_switching(settings.thread_switch_interval_ms)
    kafka = KafkaServices.start(hub) if settings.kafka_bootstrap_servers else None
    options = {
        "host": host,
        "port": port,
        "access_log": settings.access_log,
        "log_level": settings.log_level.lower(),
    }
    try:
        if workers == 1:
            from saleshub.receive.app import create_app

            uvicorn.run(create_app(hub), **options)  # type: ignore[arg-type]
        else:
            # Workers are separate processes: they read the (embedded) database URL from the environment.
            os.environ["SALESHUB_DATABASE_URL"] = hub.database.engine.url.render_as_string(
                hide_password=False
            )
            uvicorn.run(
                "saleshub.receive.app:app_from_environment",
                factory=True,
                workers=workers,
                **options,  # type: ignore[arg-type]
            )
    finally:
        if kafka is not None:
            kafka.stop()
        hub.close()


def status() -> None:
    """How the hub stands: database, schema, events of the last 24 hours, open problems, partitions."""
    settings = Settings()
    with database(settings) as db:
        try:
            revision = current_revision(db.engine)
        except Exception as exc:  # the operator needs the reason, whatever the driver raised
            raise fail(f"{db.description}: cannot read the schema revision: {exc}") from None
        expected = head_revision()
        state = (
            "[green]up to date[/green]"
            if revision == expected
            else f"[red]{revision} (needs {expected})[/red]"
        )
        out.print(f"database: {db.description}; schema {state}")
        if revision != expected:
            raise fail("run `saleshub db upgrade`")
        with db.engine.connect() as conn:
            counts = queries.event_status_counts(conn, datetime.now(UTC) - timedelta(hours=24))
            open_problems = queries.open_problem_count(conn)
            stray = queries.default_partition_rows(conn)
            partitions = list_partitions(conn, count_rows=False)
            waiting = backlog(conn)
            broker = broker_state(conn)
    table = Table("system", "status", "events (24 h)", title="Events of the last 24 hours")
    for (system, event_status), count in sorted(counts.items()):
        table.add_row(system, event_status, str(count))
    out.print(table)
    colour = "red" if open_problems else "green"
    out.print(f"[{colour}]open quarantined/failed events: {open_problems}[/{colour}]")
    if partitions:
        out.print(f"event partitions: {partitions[0].month:%Y-%m} … {partitions[-1].month:%Y-%m}")
    if stray:
        out.print(f"[yellow]{stray} events in the DEFAULT partition: run `saleshub db upgrade`[/yellow]")
    _print_backlog(settings, waiting, broker)


def _print_backlog(settings: Settings, waiting: Backlog, broker: BrokerState) -> None:
    if waiting.pending == 0:
        on_kafka = " (every committed event is on Kafka)" if settings.kafka_bootstrap_servers else ""
        out.print(f"[green]outbox: empty{on_kafka}[/green]")
    else:
        age = datetime.now(UTC) - waiting.oldest if waiting.oldest else timedelta(0)
        colour = "yellow" if age < timedelta(minutes=5) else "red"
        out.print(f"[{colour}]outbox: {waiting.pending} events waiting, oldest {_age(age)} old[/{colour}]")
        if waiting.last_error:
            out.print(f"[{colour}]outbox: last publication error: {waiting.last_error}[/{colour}]")
    if not settings.kafka_bootstrap_servers:
        out.print(_NO_KAFKA)
        return
    out.print(f"Kafka: {settings.kafka_bootstrap_servers}")
    now = datetime.now(UTC)
    if broker.checked_at is None:
        out.print("[yellow]Kafka: no relay has probed the broker yet[/yellow]")
    elif broker.unreachable_since is not None:
        since = broker.unreachable_since.astimezone(UTC)
        out.print(
            f"[red]Kafka: broker unreachable since {since:%Y-%m-%d %H:%M:%S} UTC "
            f"({_age(now - since)}; last probe {_age(now - broker.checked_at)} ago): "
            f"{broker.last_error}[/red]"
        )
    else:
        out.print(f"[green]Kafka: broker reachable (last probe {_age(now - broker.checked_at)} ago)[/green]")


def _age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
