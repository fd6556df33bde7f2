"""The running hub's parts, built once per process from the settings.

``HubRuntime.open(settings)`` loads and checks every mapping (a broken mapping stops the start with
every problem listed), opens the database (embedded when no URL is set), optionally migrates it and
creates the event partitions, and wires the ingestion pipeline (with its outbox), the event schemas
and the secret store.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass

from adapters.base import SourceAdapter
from adapters.registry import AdapterRegistry
from saleshub.events.outbox import Outbox
from saleshub.events.schemas import EventSchemas
from saleshub.ingest.pipeline import IngestPipeline
from saleshub.mapping.catalog import MappingCatalog
from saleshub.secrets import SecretStore, secret_store_from_settings
from saleshub.settings import Settings
from saleshub.store.database import Database, open_database
from saleshub.store.migrate import upgrade
from saleshub.store.partitions import ensure_partitions

__all__ = ["HubRuntime", "tune_collector"]

log = logging.getLogger(__name__)


@dataclass
class HubRuntime:
    """Settings, mappings, adapters, database, pipeline and secrets of one hub process."""

    settings: Settings
    catalog: MappingCatalog
    adapters: dict[str, SourceAdapter]
    database: Database
    pipeline: IngestPipeline
    secrets: SecretStore
    schemas: EventSchemas

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = False) -> HubRuntime:
        """Build every part; with ``migrate`` also bring the schema and partitions up to date."""
        catalog = MappingCatalog.load(settings.mappings_dir)
        registry = AdapterRegistry.default()
        adapters = {name: registry.create(name, catalog) for name in registry.names()}
        secrets = secret_store_from_settings(settings)
        schemas = EventSchemas.load(settings.contracts_dir)
        database = open_database(settings)
        try:
            if migrate:
                upgrade(database.engine)
                with database.engine.begin() as connection:
                    ensure_partitions(connection)
        except Exception:
            database.close()
            raise
        log.info("hub using %s; %d mappings loaded", database.description, len(catalog))
        pipeline = IngestPipeline(database.engine, adapters, Outbox(schemas))
        return cls(settings, catalog, adapters, database, pipeline, secrets, schemas)

    def close(self) -> None:
        """Release the database (and the embedded server's hold)."""
        self.database.close()


def tune_collector() -> None:
    """Tune CPython's garbage collector for a long-running hub process (worker, consumer, replay).

    What was built at start (modules, mappings and their generated code, schemas, crosswalks) is
    moved out of the collector's sight, and the youngest generation is collected every 20,000
    allocations instead of 700: a batch of mapped orders allocates hundreds of thousands of
    short-lived objects, and every collection walks all that survived. Worth about a tenth of a
    batch's write time. Only for processes that run the hub: frozen objects are never collected.
    """
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
