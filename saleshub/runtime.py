"""The running hub's parts, built once per process from the settings.

``HubRuntime.open(settings)`` loads and checks every mapping (a broken mapping stops the start with
every problem listed), opens the database (embedded when no URL is set), optionally migrates it,
creates the event partitions and checks that every adapter's system is registered, and wires the
recorder every transport uses, the processors' factory, the outbox, the event schemas, the secret
store and the telemetry port.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field

from sqlalchemy import Connection

from adapters.base import SourceAdapter
from adapters.registry import AdapterRegistry
from saleshub.errors import ConfigurationError
from saleshub.mapping.catalog import MappingCatalog
from saleshub.platform.secrets import SecretStore, secret_store_from_settings
from saleshub.platform.settings import Settings
from saleshub.platform.telemetry import NoTelemetry, Telemetry, telemetry_from_settings
from saleshub.process.processor import Processor
from saleshub.publish.outbox import Outbox
from saleshub.publish.schemas import EventSchemas
from saleshub.receive.recorder import Recorder
from saleshub.store import queries
from saleshub.store.database import Database, open_database
from saleshub.store.migrate import upgrade
from saleshub.store.partitions import ensure_partitions

__all__ = ["HubRuntime", "tune_collector"]

log = logging.getLogger(__name__)


@dataclass
class HubRuntime:
    """Settings, mappings, adapters, database, recorder, outbox, secrets and telemetry of one process."""

    settings: Settings
    catalog: MappingCatalog
    adapters: dict[str, SourceAdapter]
    database: Database
    recorder: Recorder
    outbox: Outbox
    secrets: SecretStore
    schemas: EventSchemas
    telemetry: Telemetry = field(default_factory=NoTelemetry)

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = False) -> HubRuntime:
        """Build every part; with ``migrate`` also bring the schema and partitions up to date."""
        catalog = MappingCatalog.load(settings.mappings_dir)
        registry = AdapterRegistry.default()
        limit = settings.web.max_body_bytes
        adapters = {name: registry.create(name, catalog, max_body_bytes=limit) for name in registry.names()}
        secrets = secret_store_from_settings(settings)
        telemetry = telemetry_from_settings(settings)
        schemas = EventSchemas.load(settings.contracts_dir)
        try:
            database = open_database(settings, secrets)
        except Exception:
            secrets.close()
            raise
        try:
            if migrate:
                upgrade(database.engine)
                with database.engine.begin() as connection:
                    ensure_partitions(connection)
                    _check_systems_registered(connection, adapters)
        except Exception:
            database.close()
            secrets.close()
            raise
        log.info("hub using %s; %d mappings loaded", database.description, len(catalog))
        outbox = Outbox(schemas)
        recorder = Recorder(database.engine, outbox, telemetry)
        return cls(settings, catalog, adapters, database, recorder, outbox, secrets, schemas, telemetry)

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
        """Send buffered telemetry, release the database (and the embedded server's hold), then leases."""
        self.telemetry.close()
        self.database.close()
        self.secrets.close()


def _check_systems_registered(connection: Connection, adapters: dict[str, SourceAdapter]) -> None:
    # The event and order tables name their system without a foreign key (migration 0003), so a
    # system is checked here, once, instead of on every row.
    known = queries.registered_systems(connection)
    missing = sorted(set(adapters) - known)
    if missing:
        raise ConfigurationError(
            f"adapters without a row in sales_systems: {', '.join(missing)}; a sales system is "
            "registered as a row (code, name, countries served) before the hub takes its events"
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
