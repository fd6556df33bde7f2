"""``saleshub serve`` and ``saleshub status``: run the hub, and tell an operator how it stands.

``serve`` loads and checks the mappings, opens the database (starting the embedded PostgreSQL when
no URL is configured), migrates it and creates the event partitions (with a leased database user it
only checks them: schema changes are the owner's, ``saleshub db upgrade``), says what it runs on and which
systems have webhook secrets, starts the outbox relay and the Pyxis topic consumer when Kafka is
configured (in this process, beside the web workers; ``--receive-only`` leaves them, the processors
and the pollers to commands of their own), then serves HTTP with uvicorn. With several
workers each worker process opens its own pool on the same database: the resolved settings travel
to them with uvicorn's configuration (``saleshub.commands.workers``), not through the environment.
SIGTERM or SIGINT stops it cleanly (exit 0): the server drains, the Kafka threads stop and the
embedded PostgreSQL is released. Without Kafka, canonical events are kept in the outbox, and both
``serve`` and ``status`` say so. ``status`` tries Vault once instead of waiting for it, so it answers within
seconds whatever is down, and says what is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from saleshub.actions.status import hub_status
from saleshub.commands.common import StopSignal, fail
from saleshub.console import err, out
from saleshub.errors import ConfigurationError, RetriableError, SalesHubError, SecretStoreError
from saleshub.platform.secrets import (
    EnvSecretStore,
    SecretStore,
    StoreHealth,
    secret_store_from_settings,
)
from saleshub.platform.settings import Settings
from saleshub.store.database import Database, open_database
from saleshub.store.failures import database_errors
from saleshub.store.mapping_revisions import LiveProcess, StoredRevision, deployed_revision
from saleshub.store.migrate import current_revision, head_revision
from saleshub.store.outbox import Backlog, BrokerState
from saleshub.store.partitions import uncovered_message

if TYPE_CHECKING:  # `serve` imports these when it runs; `status` needs none of them
    from saleshub.runtime import HubRuntime

__all__ = ["serve", "status"]


def _announce(hub: HubRuntime, host: str, port: int, workers: int, *, receive_only: bool) -> None:
    out.print(f"[bold]saleshub[/bold] on {hub.database.description}")
    out.print(f"mappings: {', '.join(m.identity.label for m in hub.catalog)}")
    _warn_if_disk_differs(hub)
    out.print(f"webhook secrets: {hub.secrets.where('webhook/<system>')}")
    for system in sorted(hub.adapters):
        try:
            count = len(hub.secrets.webhook_keys(system))
        except ConfigurationError as exc:
            raise fail(str(exc)) from None
        if count:
            out.print(f"webhooks: POST http://{host}:{port}/webhooks/{system} ({count} secret(s))")
        else:
            err.print(
                f"[yellow]webhooks for {system} are refused (401): no secret in "
                f"{hub.secrets.where(f'webhook/{system}')}; set "
                f"{EnvSecretStore.variable(f'webhook/{system}')}, or SALESHUB_SECRETS__BACKEND=file with "
                f"SALESHUB_SECRETS__FILE=<a YAML file with webhook: {{{system}: [whsec_…]}}>[/yellow]",
                soft_wrap=True,
            )
    if receive_only:
        out.print(
            "receiving only: processors (`saleshub process`), relays (`saleshub kafka relay`), "
            "consumers (`saleshub kafka consume`) and pollers (`saleshub poll serve`) run elsewhere"
        )
        out.print(f"serving with {workers} worker(s); Ctrl+C stops")
        return
    kafka = hub.settings.kafka
    if kafka.bootstrap_servers:
        framing = "schema registry" if kafka.schema_registry_url else "Avro single-object encoding"
        out.print(f"Kafka: publishing to {kafka.bootstrap_servers} ({framing})")
        for system, topic in sorted(kafka.inbound_topics.items()):
            out.print(f"Kafka: consuming {topic} ({system}) as group {kafka.consumer_group}")
    else:
        err.print(_NO_KAFKA)
    for system, polled in sorted(hub.settings.pollers.systems.items()):
        out.print(f"polling: {system} at {polled.base_url}, {polled.trigger_description()}")
    out.print(f"serving with {workers} worker(s); Ctrl+C stops")


def _warn_if_disk_differs(hub: HubRuntime) -> None:
    """Say so when the files on disk are not the deployed revision (an edit not yet deployed)."""
    from saleshub.mapping.revision import MappingFiles

    if hub.mappings.revision is None:
        return
    try:
        on_disk = MappingFiles.read(hub.settings.mappings_dir).content_hash
    except ConfigurationError:
        return
    with hub.database.engine.connect() as conn:
        deployed = deployed_revision(conn)
    if deployed is not None and deployed.content_hash != on_disk:
        err.print(
            f"[yellow]mappings: the files in {hub.settings.mappings_dir} differ from the deployed revision "
            f"r{deployed.revision}; the hub maps with r{deployed.revision} until they are deployed "
            "(`saleshub mappings deploy`)[/yellow]"
        )


_NO_KAFKA = (
    "[yellow]Kafka: not configured (SALESHUB_KAFKA__BOOTSTRAP_SERVERS); canonical events are kept in "
    "the outbox and published once Kafka is configured[/yellow]"
)


def serve(
    host: Annotated[str | None, typer.Option(help="listen address [default: SALESHUB_WEB__HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="listen port [default: SALESHUB_WEB__PORT]")] = None,
    workers: Annotated[
        int | None, typer.Option(help="worker processes [default: SALESHUB_WEB__WORKERS]")
    ] = None,
    receive_only: Annotated[
        bool,
        typer.Option(
            "--receive-only",
            help="only receive webhooks: no processors, relays, consumers, pollers or audit sealing in "
            "this process (each runs as a command of its own)",
        ),
    ] = False,
) -> None:
    """Run the hub: migrate, then receive webhooks (embedded PostgreSQL unless a URL is set)."""
    from saleshub.platform.logs import configure_logging
    from saleshub.runtime import HubRuntime, tune_collector
    from saleshub.services import Services

    settings = Settings()
    web = settings.web
    host, port, workers = host or web.host, port or web.port, workers or web.workers
    configure_logging(settings)  # text or JSON, personal data masked; quiets pgserver and Alembic
    try:
        with database_errors():
            hub = HubRuntime.open(settings, migrate=True)
    except RetriableError as exc:  # psycopg's reason spans lines; an operator needs one
        raise fail(" ".join(str(exc).split())) from None
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    try:
        _announce(hub, host, port, workers, receive_only=receive_only)
        tune_collector()
        kafka_on = bool(settings.kafka.bootstrap_servers) and not receive_only
        hub.follow_mappings("receiver" if receive_only else "serve")
        background = Services.start(
            hub,
            processors=0 if receive_only else settings.processor.threads,
            relay=kafka_on,
            consumer=kafka_on,
            pollers=bool(settings.pollers.systems) and not receive_only,
            sealing=not receive_only,
        )
        try:
            _serve_http(hub, host, port, workers)
        finally:
            background.stop()
    finally:
        hub.close()


def _serve_http(hub: HubRuntime, host: str, port: int, workers: int) -> None:
    import uvicorn

    from saleshub.commands.workers import run_workers

    options: dict[str, object] = {
        "host": host,
        "port": port,
        "access_log": hub.settings.web.access_log,
        "log_level": hub.settings.log_level.lower(),
        "log_config": None,  # uvicorn's lines go through the hub's handler (format, masking)
    }
    if workers > 1:
        run_workers(hub.settings, hub.database.url, workers, **options)
        return
    from saleshub.console.app import create_hub_app

    server = uvicorn.Server(uvicorn.Config(create_hub_app(hub), **options))  # type: ignore[arg-type]
    try:
        server.run()
    except StopSignal:  # uvicorn shut down gracefully on the signal, then raised it again
        return
    if not server.started:
        raise fail(f"could not serve on {host}:{port} (see the log above)")


def status() -> None:
    """How the hub stands: database, schema, events of the last 24 hours, open problems, partitions."""
    settings = Settings()
    try:
        # Vault is tried once: status reports an outage instead of waiting it out.
        secrets = secret_store_from_settings(settings, wait=False)
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    try:
        _status(settings, secrets)
    finally:
        secrets.close()


def _print_secrets(health: StoreHealth) -> None:
    colour = "green" if health.available else "red"
    out.print(f"[{colour}]secrets: {health.detail}[/{colour}]")
    for lease in health.leases:
        renewable = "renewable" if lease.renewable else "not renewable"
        out.print(
            f"secrets: {lease.name} leased from {lease.source} as {lease.username}, expires "
            f"{lease.expires_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({renewable})"
        )


def _status(settings: Settings, secrets: SecretStore) -> None:
    try:
        db = open_database(settings, secrets)
    except (SecretStoreError, RetriableError) as exc:
        health = secrets.health()
        if settings.database.url is not None and not health.available:
            out.print(
                "[red]database: not checked: its credentials (database/credentials) come from the "
                "secret store, which cannot give them now[/red]"
            )
            _print_secrets(health)
            raise fail(f"the secret store is unavailable: {health.detail}") from None
        raise fail(" ".join(str(exc).split())) from None
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    try:
        _report(settings, secrets, db)
    finally:
        db.close()


def _report(settings: Settings, secrets: SecretStore, db: Database) -> None:
    try:
        revision = current_revision(db.engine)
    except Exception as exc:  # the operator needs the reason, whatever the driver raised
        _print_secrets(secrets.health())  # what else is down, before the error
        raise fail(f"{db.description}: cannot read the schema revision: {exc}") from None
    expected = head_revision()
    state = (
        "[green]up to date[/green]" if revision == expected else f"[red]{revision} (needs {expected})[/red]"
    )
    out.print(f"database: {db.description}; schema {state}")
    if revision != expected:
        raise fail("run `saleshub db upgrade`")
    with db.engine.connect() as conn:
        now = hub_status(conn)
    table = Table("system", "status", "events (24 h)", title="Events of the last 24 hours")
    for (system, event_status), count in sorted(now.counts.items()):
        table.add_row(system, event_status, str(count))
    out.print(table)
    colour = "red" if now.open_problems else "green"
    out.print(f"[{colour}]open quarantined/failed events: {now.open_problems}[/{colour}]")
    for system, minutes in now.per_minute.items():
        out.print(
            f"events in the last hour, {system}: {sum(minutes)}, {sum(minutes) / len(minutes):.1f} "
            f"per minute, at most {max(minutes)} in a minute"
        )
    if now.partitions:
        out.print(f"event partitions: {now.partitions[0].month:%Y-%m} … {now.partitions[-1].month:%Y-%m}")
    if now.uncovered:
        out.print(f"[yellow]event partitions: {uncovered_message(now.uncovered)}[/yellow]")
    if now.default_partition_rows:
        out.print(
            f"[yellow]{now.default_partition_rows} events in the DEFAULT partition: "
            "run `saleshub db upgrade`[/yellow]"
        )
    _print_queue(now.queued, now.oldest_queued)
    _print_mappings(now.deployed, now.running)
    _print_backlog(settings, now.backlog, now.broker)
    _print_secrets(secrets.health())


def _print_mappings(deployed: StoredRevision | None, running: Sequence[LiveProcess]) -> None:
    if deployed is None:
        out.print("[yellow]mappings: no revision deployed yet (`saleshub mappings deploy`)[/yellow]")
    else:
        out.print(
            f"mappings: revision r{deployed.revision} deployed {deployed.deployed_at:%Y-%m-%d %H:%M} "
            f"({', '.join(deployed.mappings.values())})"
        )
    for process in running:
        revision = f"r{process.mapping_revision}" if process.mapping_revision else "files on disk"
        behind = deployed is not None and process.mapping_revision != deployed.revision
        colour = "yellow" if behind else "green"
        out.print(f"[{colour}]process {process.process} ({process.role}): maps with {revision}[/{colour}]")


def _print_queue(queued: int, oldest: datetime | None) -> None:
    if queued == 0:
        out.print("[green]processing: nothing waiting[/green]")
        return
    age = datetime.now(UTC) - oldest if oldest else timedelta(0)
    colour = "yellow" if age < timedelta(minutes=1) else "red"
    out.print(
        f"[{colour}]processing: {queued} recorded events waiting, oldest {_age(age)} old "
        f"(run `saleshub serve` or `saleshub process`)[/{colour}]"
    )


def _print_backlog(settings: Settings, waiting: Backlog, broker: BrokerState) -> None:
    if waiting.pending == 0:
        on_kafka = " (every committed event is on Kafka)" if settings.kafka.bootstrap_servers else ""
        out.print(f"[green]outbox: empty{on_kafka}[/green]")
    else:
        age = datetime.now(UTC) - waiting.oldest if waiting.oldest else timedelta(0)
        colour = "yellow" if age < timedelta(minutes=5) else "red"
        out.print(f"[{colour}]outbox: {waiting.pending} events waiting, oldest {_age(age)} old[/{colour}]")
        if waiting.last_error:
            out.print(f"[{colour}]outbox: last publication error: {waiting.last_error}[/{colour}]")
    if not settings.kafka.bootstrap_servers:
        out.print(_NO_KAFKA)
        return
    out.print(f"Kafka: {settings.kafka.bootstrap_servers}")
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
