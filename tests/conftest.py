"""Shared fixtures: the repository's mapping catalog and adapters, loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.base import SourceAdapter
from adapters.registry import AdapterRegistry
from saleshub.mapping.catalog import MappingCatalog

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"
SAMPLES = ROOT / "contracts" / "samples"


@pytest.fixture(scope="session")
def catalog() -> MappingCatalog:
    return MappingCatalog.load(MAPPINGS)


@pytest.fixture(scope="session")
def adapters(catalog: MappingCatalog) -> dict[str, SourceAdapter]:
    registry = AdapterRegistry.default()
    return {name: registry.create(name, catalog) for name in registry.names()}
