"""Shared fixtures: a mapping catalog and adapters, loaded once per session.

Unit and property tests use their own copy of the mappings (``tests/fixtures/mappings``), not the
stewards' live files, so an edit by a steward never breaks a test of the engine. The contract and
integration tests check the live files (``MAPPINGS``) against the golden samples.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.base import SourceAdapter
from adapters.registry import AdapterRegistry
from saleshub.mapping.catalog import MappingCatalog

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"
FIXTURE_MAPPINGS = ROOT / "tests" / "fixtures" / "mappings"
SAMPLES = ROOT / "contracts" / "samples"


@pytest.fixture(scope="session")
def catalog() -> MappingCatalog:
    return MappingCatalog.load(FIXTURE_MAPPINGS)


@pytest.fixture(scope="session")
def adapters(catalog: MappingCatalog) -> dict[str, SourceAdapter]:
    registry = AdapterRegistry.default()
    return {name: registry.create(name, catalog) for name in registry.names()}
