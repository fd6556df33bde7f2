"""Every module's ``__all__`` is its public surface, checked in both directions.

Each name listed in ``__all__`` exists, and each public name a module defines itself (a class,
function or constant not starting with ``_``, not imported from elsewhere) is listed.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

PACKAGES = ("canonical", "adapters", "saleshub", "reconciliation")
# Entry points and migration scripts are run, not imported for their names.
SKIPPED = ("saleshub.__main__", "saleshub.store.migrations")


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
            if not info.name.startswith(SKIPPED):
                names.append(info.name)
    return sorted(names)


def _defined_here(module: ModuleType) -> set[str]:
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if inspect.ismodule(value):
            continue
        origin = getattr(value, "__module__", None)
        if (inspect.isclass(value) or inspect.isfunction(value)) and origin != module.__name__:
            continue  # imported from elsewhere
        if not (inspect.isclass(value) or inspect.isfunction(value)) and name not in _assigned(module):
            continue  # a constant imported from elsewhere
        names.add(name)
    return names


def _assigned(module: ModuleType) -> set[str]:
    source = inspect.getsource(module)
    names = set()
    for line in source.splitlines():
        head = line.split("=", 1)[0].split(":", 1)[0].strip()
        if line and not line[0].isspace() and head.isidentifier() and ("=" in line or ":" in line):
            names.add(head)
    return names


@pytest.mark.parametrize("name", _modules())
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    defined = _defined_here(module)
    if exported is None:
        assert not defined, f"{name} defines public names but has no __all__: {sorted(defined)}"
        return
    missing = [item for item in exported if not hasattr(module, item)]
    assert not missing, f"{name}.__all__ lists names it does not have: {missing}"
    unlisted = sorted(defined - set(exported) - {"log", "app"} if name != "saleshub.cli" else set())
    assert not unlisted, f"{name} defines public names missing from __all__: {unlisted}"
