"""Mapping files that installed plug-ins ship: a new system's mapping comes with its adapter.

A plug-in package publishes the directory of its mappings in the ``saleshub.mappings`` entry-point
group (name = system code, value = the package holding the directory)::

    [project.entry-points."saleshub.mappings"]
    acme = "saleshub_acme.mappings"

The directory is laid out like the hub's ``mappings/``: ``<system>/<name>.yaml`` and, for code
tables of its own, ``crosswalks/<table>.csv``. A catalog loaded from a directory
(``MappingCatalog.load``) and the files of a revision (``MappingFiles.read``) include every such
file whose path the directory itself lacks: the hub's own ``mappings/`` wins, so a steward takes
over a plug-in's mapping by copying it there. ``saleshub serve`` deploys the plug-in files a deployed
revision lacks as a new revision (``saleshub.stewards.deployment.deploy_packaged``).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

from saleshub.errors import ConfigurationError

__all__ = ["MAPPINGS_ENTRY_POINT_GROUP", "PATTERNS", "packaged_files", "read_directory"]

MAPPINGS_ENTRY_POINT_GROUP = "saleshub.mappings"
#: The files of a mappings directory that make a revision (mapping files, crosswalks).
PATTERNS = ("*/*.yaml", "*/*.yml", "crosswalks/*.csv")


def read_directory(directory: Path) -> dict[str, str]:
    """The mapping files and crosswalks of ``directory`` as text by relative path."""
    found: dict[str, str] = {}
    for pattern in PATTERNS:
        for path in sorted(directory.glob(pattern)):
            relative = path.relative_to(directory).as_posix()
            if path.suffix != ".csv" and path.parent.name == "crosswalks":
                continue
            try:
                found[relative] = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigurationError(
                    f"{relative} in {directory} is not UTF-8 (byte {exc.start}); save it as UTF-8"
                ) from None
    return found


def packaged_files() -> dict[str, str]:
    """Every installed plug-in's mapping files by relative path; a path two plug-ins ship is an error."""
    shipped: dict[str, str] = {}
    owner: dict[str, str] = {}
    for entry in sorted(entry_points(group=MAPPINGS_ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            directory = Path(str(files(entry.value)))
        except (ImportError, TypeError) as exc:
            raise ConfigurationError(
                f"mapping plug-in {entry.name!r} ({entry.value}) cannot be found: {exc}"
            ) from exc
        for relative, text in read_directory(directory).items():
            if relative in owner and shipped[relative] != text:
                raise ConfigurationError(
                    f"{relative} is shipped by both mapping plug-ins {owner[relative]!r} and {entry.name!r}"
                )
            shipped[relative], owner[relative] = text, entry.name
    return shipped
