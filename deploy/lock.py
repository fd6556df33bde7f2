"""Write ``deploy/requirements.lock``: the hub's runtime dependencies, pinned, from an installed hub.

The image (``deploy/Containerfile``) and ``deploy/install.sh`` install exactly these versions with
``--no-deps``, so a build gives the same packages whenever it runs. The lock is the closure of the
``[project] dependencies`` of ``pyproject.toml`` as installed in the running interpreter's
environment (the development tools of the ``dev`` extra are not in it). Run it after changing a
dependency, from a freshly set up checkout::

    .venv/bin/python deploy/lock.py
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = Path(__file__).with_name("requirements.lock")
HEADER = (
    "# The hub's runtime dependencies, pinned (written by deploy/lock.py from an installed hub;\n"
    "# installed with --no-deps by deploy/install.sh and the image).\n"
)


def _applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    environment = default_environment()
    return any(requirement.marker.evaluate({**environment, "extra": extra}) for extra in (extras or {""}))


def runtime_closure(root: str = "saleshub") -> dict[str, str]:
    """``{distribution name: installed version}`` of everything ``root`` needs to run."""
    pinned: dict[str, str] = {}
    pending: list[tuple[str, set[str]]] = [(root, set())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        key = (canonicalize_name(name), frozenset(extras))
        if key in seen:
            continue
        seen.add(key)
        distribution = metadata.distribution(name)
        if canonicalize_name(name) != canonicalize_name(root):
            pinned[canonicalize_name(distribution.metadata["Name"])] = distribution.version
        for line in distribution.requires or []:
            requirement = Requirement(line)
            if _applies(requirement, extras):
                pending.append((requirement.name, set(requirement.extras)))
    return dict(sorted(pinned.items()))


def main() -> int:
    """Write the lock next to this script."""
    pins = runtime_closure()
    LOCK.write_text(HEADER + "".join(f"{name}=={version}\n" for name, version in pins.items()))
    print(f"{LOCK.name}: {len(pins)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
