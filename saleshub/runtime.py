"""The running hub's parts, built once per process from the settings.

``HubRuntime.open(settings)`` opens the database (embedded when no URL is set), optionally migrates
it and creates the event partitions (or, with a leased database user, only checks them: that DDL is
the owner's, ``saleshub db upgrade``) and checks that every adapter's system is registered, takes the
mappings, and wires the recorder every transport uses, the processors' factory, the outbox, the
event schemas, the secret store and the telemetry port.

The mappings are the **deployed mapping revision** stored in the database; with no revision yet,
``serve`` (``migrate=True``) deploys the files on disk as the first one, and other commands use the
files on disk. ``open(settings, mappings=DIR)`` pins a directory instead (a steward's candidate).
Adapters hold the runtime's ``MappingRegistry``; ``follow_mappings`` starts the thread that switches
it to each newly deployed revision, without a restart (``saleshub.stewards.deployment``).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection

from adapters.base import SourceAdapter
from adapters.registry import AdapterRegistry
from saleshub.errors import ConfigurationError, RetriableError
from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.registry import MappingRegistry
from saleshub.mapping.revision import MappingFiles
from saleshub.platform.secrets import SecretStore, secret_store_from_settings
from saleshub.platform.settings import Settings
from saleshub.platform.telemetry import NoTelemetry, Telemetry, telemetry_from_settings
from saleshub.process.processor import Processor
from saleshub.publish.outbox import Outbox
from saleshub.publish.schemas import EventSchemas
from saleshub.receive.recorder import Recorder
from saleshub.stewards.deployment import RevisionFollower, deploy, deploy_packaged, load_deployed
from saleshub.store import queries
from saleshub.store.database import Database, open_database
from saleshub.store.failures import first_line, lacks_privilege
from saleshub.store.migrate import current_revision, head_revision, is_newer_than_head, upgrade
from saleshub.store.partitions import ensure_partitions, uncovered_message, uncovered_months
from saleshub.store.systems import SystemRow, sync_systems

__all__ = ["HubRuntime", "register_systems", "system_row", "tune_collector"]

log = logging.getLogger(__name__)


@dataclass
class HubRuntime:
    """Settings, mappings, adapters, database, recorder, outbox, secrets and telemetry of one process."""

    settings: Settings
    mappings: MappingRegistry
    adapters: dict[str, SourceAdapter]
    database: Database
    recorder: Recorder
    outbox: Outbox
    secrets: SecretStore
    schemas: EventSchemas
    telemetry: Telemetry = field(default_factory=NoTelemetry)
    follower: RevisionFollower | None = None

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = False, mappings: Path | None = None) -> HubRuntime:
        """Build every part; with ``migrate`` also bring the schema and partitions up to date.

        ``mappings`` pins a mappings directory instead of the deployed revision.
        """
        pinned = MappingCatalog.load(mappings) if mappings is not None else None
        secrets = secret_store_from_settings(settings)
        telemetry = telemetry_from_settings(settings)
        schemas = EventSchemas.load(settings.contracts_dir)
        try:
            database = open_database(settings, secrets)
        except Exception:
            secrets.close()
            raise
        try:
            leased = migrate and secrets.leased_credentials("database/credentials") is not None
            if migrate:
                _prepare_store(database, leased=leased)
            registry = (
                MappingRegistry(pinned) if pinned is not None else _deployed(settings, database, migrate)
            )
            adapters = _adapters(settings, registry)
            if migrate:
                with database.engine.begin() as connection:
                    if not leased:  # a leased user may not write reference data; it only checks
                        register_systems(connection, [type(a) for _, a in sorted(adapters.items())])
                    _check_systems_registered(connection, adapters)
        except Exception:
            database.close()
            secrets.close()
            raise
        where = f"revision r{registry.revision}" if registry.revision else registry.catalog.origin
        log.info("hub using %s; %d mappings from %s", database.description, len(registry), where)
        outbox = Outbox(schemas)
        recorder = Recorder(database.engine, outbox, telemetry)
        hub = cls(settings, registry, adapters, database, recorder, outbox, secrets, schemas, telemetry)
        if pinned is None:
            hub.follower = RevisionFollower(database.engine, registry, "hub")
        return hub

    @property
    def catalog(self) -> MappingCatalog:
        """The mapping catalog in use now (the deployed revision's, unless pinned)."""
        return self.mappings.catalog

    def follow_mappings(self, role: str) -> None:
        """Switch to each newly deployed mapping revision from now on (idempotent; not when pinned)."""
        if self.follower is not None and not self.follower.running:
            self.follower.role = role
            self.follower.start()

    def processor(self) -> Processor:
        """A new processor of recorded events (each processing thread or process has its own)."""
        return Processor(
            self.database.engine,
            self.adapters,
            self.outbox,
            batch_size=self.settings.processor.batch_size,
            telemetry=self.telemetry,
        )

    def close(self) -> None:
        """Stop following deployments, send buffered telemetry, release the database, then leases."""
        if self.follower is not None:
            self.follower.stop()
        self.telemetry.close()
        self.database.close()
        self.secrets.close()


def _prepare_store(database: Database, *, leased: bool) -> None:
    """Bring the schema and the event partitions up to date, or only check them with a leased user.

    Schema changes and partitions are DDL, made by the owner role: here when the hub logs in as
    the owner (the embedded PostgreSQL, or static credentials of the owner), otherwise by
    ``saleshub db upgrade`` with the owner's credentials. A leased runtime user never makes one
    (its role owns nothing, so Vault can drop it): the start checks that the schema is current and
    says what to run when the partitions run short, instead of failing on "permission denied".
    A schema a newer release migrated stays as it is (compatible one release back): this is the
    previous release starting during a rollout or after a rollback of the code.
    """
    revision = current_revision(database.engine)
    if not leased:
        if not is_newer_than_head(revision):
            upgrade(database.engine)
        try:
            with database.engine.begin() as connection:
                ensure_partitions(connection)
            return
        except Exception as exc:
            if not lacks_privilege(exc):
                raise
            log.warning("the database user may not create event partitions (%s)", first_line(exc))
    else:
        expected = head_revision()
        if revision != expected and not is_newer_than_head(revision):
            raise ConfigurationError(
                f"the database schema is at {revision or '(empty)'} and this hub needs {expected}; "
                "schema changes run as the owner role, never as the leased runtime user: run `saleshub "
                "db upgrade` with the owner's credentials (secret database/owner)"
            )
    with database.engine.connect() as connection:
        missing = uncovered_months(connection)
    if missing:
        log.warning("%s", uncovered_message(missing))


def _adapters(settings: Settings, registry: MappingRegistry) -> dict[str, SourceAdapter]:
    adapters = AdapterRegistry.default()
    limit = settings.web.max_body_bytes
    return {name: adapters.create(name, registry, max_body_bytes=limit) for name in adapters.names()}


def _deployed(settings: Settings, database: Database, migrate: bool) -> MappingRegistry:
    """The deployed revision; without one, the files on disk (deployed first when ``migrate``)."""
    try:
        if migrate:
            deploy_packaged(database.engine)
        found = load_deployed(database.engine)
    except RetriableError as exc:  # the hub starts anyway (503 until the database is back)
        log.warning("cannot read the deployed mapping revision (%s); using the files on disk for now", exc)
        return MappingRegistry(MappingCatalog.load(settings.mappings_dir))
    if found is not None:
        return MappingRegistry(*found)
    catalog = MappingCatalog.load(settings.mappings_dir)
    if not migrate:
        return MappingRegistry(catalog)
    files = MappingFiles.read(settings.mappings_dir)
    message = f"first start: the files of {settings.mappings_dir}"
    deploy(database.engine, files, catalog, message)
    found = load_deployed(database.engine)
    return MappingRegistry(*found) if found is not None else MappingRegistry(catalog)


def system_row(adapter: type[SourceAdapter]) -> SystemRow:
    """The ``sales_systems`` row of ``adapter``'s system, from its metadata."""
    return SystemRow(
        code=adapter.system,
        name=adapter.name,
        countries=tuple(sorted(adapter.countries)),
        configuration={
            "transports": sorted(adapter.transports),
            "channels": sorted(adapter.channels),
            "media_types": sorted(adapter.media_types),
        },
    )


def register_systems(connection: Connection, adapters: Iterable[type[SourceAdapter]]) -> list[str]:
    """Write the ``sales_systems`` rows and business-unit links of ``adapters``; the new codes."""
    new = sync_systems(connection, [system_row(adapter) for adapter in adapters])
    if new:
        log.info("registered the sales systems %s from their adapters", ", ".join(new))
    return new


def _check_systems_registered(connection: Connection, adapters: dict[str, SourceAdapter]) -> None:
    # The event and order tables name their system without a foreign key (migration 0003), so a
    # system is checked here, once, instead of on every row.
    known = queries.registered_systems(connection)
    missing = sorted(set(adapters) - known)
    if missing:
        raise ConfigurationError(
            f"adapters without a row in sales_systems: {', '.join(missing)}; `saleshub serve` (or "
            "`saleshub db upgrade`) writes a system's row from its adapter before the hub takes its events"
        )


def tune_collector() -> None:
    """Tune CPython's garbage collector for a long-running hub process (worker, consumer, replay).

    What was built at start (modules, mappings and their generated code, schemas, crosswalks) is
    moved out of the collector's sight, and the youngest generation is collected every 20,000
    allocations instead of 700: a batch of mapped orders allocates hundreds of thousands of
    short-lived objects, and every collection walks all that survived. Worth about a tenth of a
    batch's write time. Only for processes that run the hub: frozen objects are never collected.
    Called once per process, at its entry: by each long-running command after its runtime is
    built, and by the factory of each web worker process.
    """
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
