"""Shared fixtures: a mapping catalog and adapters, loaded once per session.

Unit and property tests use their own copy of the mappings (``tests/fixtures/mappings``), not the
stewards' live files, so an edit by a steward never breaks a test of the engine. The contract and
integration tests check the live files (``MAPPINGS``) against the golden samples.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, settings

from adapters.base import SourceAdapter
from adapters.registry import AdapterRegistry
from saleshub.mapping.catalog import MappingCatalog

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"

# One local master key for the whole session, shared by the hub processes a test starts (they
# inherit the environment) and the runtimes it opens in-process, whatever their data directory:
# like the processes of one deployment, they must wrap and unwrap data keys with the same key.
os.environ.setdefault(
    "SALESHUB_PRIVACY__KEY_FILE", str(Path(tempfile.mkdtemp(prefix="saleshub-keys-")) / "master.key")
)
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

# No Hypothesis test depends on how fast the machine is: no per-example deadline (200 ms by default)
# and no "too slow" health check; a test that bounds the CPU an input may take says so itself, with
# a budget scaled to this machine (``tests/support/machine.py``).
settings.register_profile("saleshub", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("saleshub")


def _ours(handler: logging.Handler) -> bool:
    """Whether a root handler was put there by the code under test, not by pytest's log capture."""
    return not type(handler).__module__.startswith("_pytest")


@pytest.fixture(autouse=True)
def _root_logger_as_it_was() -> Iterator[None]:
    """Undo what a command run in-process did to the root logger (``configure_logging``).

    A command configures logging for its process; run in-process by a test, its handler and level
    would outlive the test, and every later test's log records (from any thread) would go through
    them. Each test starts from the same logging configuration.
    """
    root = logging.getLogger()
    before, level = [handler for handler in root.handlers if _ours(handler)], root.level
    yield
    for handler in [handler for handler in root.handlers if _ours(handler)]:
        if handler not in before:
            root.removeHandler(handler)
    for handler in before:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def catalog() -> MappingCatalog:
    return MappingCatalog.load(FIXTURE_MAPPINGS)


@pytest.fixture(scope="session")
def adapters(catalog: MappingCatalog) -> dict[str, SourceAdapter]:
    registry = AdapterRegistry.default()
    return {name: registry.create(name, catalog) for name in registry.names()}
