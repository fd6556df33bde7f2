"""Shared fixtures: a mapping catalog and adapters, loaded once per session.

Unit and property tests use their own copy of the mappings (``tests/fixtures/mappings``), not the
stewards' live files, so an edit by a steward never breaks a test of the engine. The contract and
integration tests check the live files (``MAPPINGS``) against the golden samples.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import anyio
import pytest

from adapters.base import SourceAdapter
from adapters.registry import AdapterRegistry
from saleshub.mapping.catalog import MappingCatalog

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"
FIXTURE_MAPPINGS = ROOT / "tests" / "fixtures" / "mappings"
SAMPLES = ROOT / "contracts" / "samples"


def _import_all_of_anyio() -> None:
    """Import every anyio module now, in the main thread, before a test starts a server thread.

    anyio imports its modules on first use (``anyio.open_file`` when Starlette first serves a
    file). pytest rewrites the modules of the packages that provide its plugins, anyio among them,
    parsing their source as they are imported, and CPython 3.11's parser is not safe in two threads
    at once: a first use in a test's server thread, while another thread compiled, failed with
    "SystemError: AST constructor recursion depth mismatch" and dropped the response.
    """
    for module in pkgutil.walk_packages(anyio.__path__, "anyio."):
        if "trio" not in module.name:  # the optional trio backend is not installed
            importlib.import_module(module.name)


_import_all_of_anyio()


@pytest.fixture(scope="session")
def catalog() -> MappingCatalog:
    return MappingCatalog.load(FIXTURE_MAPPINGS)


@pytest.fixture(scope="session")
def adapters(catalog: MappingCatalog) -> dict[str, SourceAdapter]:
    registry = AdapterRegistry.default()
    return {name: registry.create(name, catalog) for name in registry.names()}
