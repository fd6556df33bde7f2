"""A mapping revision as data: the mapping files and crosswalks of one ``mappings/`` directory.

``MappingFiles.read(directory)`` takes every mapping file (``<system>/*.yaml``) and crosswalk
(``crosswalks/*.csv``) as text, keyed by relative path, with those of installed mapping plug-ins
the directory lacks (``saleshub.mapping.packaged``); ``content_hash`` is a SHA-256 over the
sorted paths and bytes, so two directories with the same files have the same hash whatever their
place or timestamps. ``catalog`` compiles the files (through a temporary directory, with exactly
the loader the directory itself would get), so a revision stored in the database maps exactly as
its files did on disk.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from saleshub.errors import ConfigurationError
from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.packaged import packaged_files, read_directory

__all__ = ["MappingFiles"]


@dataclass(frozen=True, slots=True)
class MappingFiles:
    """Every mapping file and crosswalk of one revision, as text by relative path."""

    files: dict[str, str]

    @classmethod
    def read(cls, directory: Path) -> MappingFiles:
        """The files of ``directory`` and of installed mapping plug-ins it lacks (``packaged``).

        A file that is not UTF-8 is named in the error.
        """
        if not directory.is_dir():
            raise ConfigurationError(f"mappings directory {directory} does not exist")
        files = read_directory(directory)
        for relative, text in packaged_files().items():
            files.setdefault(relative, text)  # the directory's own file wins over a plug-in's
        return cls(dict(sorted(files.items())))

    @property
    def content_hash(self) -> str:
        """SHA-256 over the sorted relative paths and the files' UTF-8 bytes."""
        digest = hashlib.sha256()
        for path, text in sorted(self.files.items()):
            encoded = text.encode("utf-8")
            digest.update(f"{path}\0{len(encoded)}\0".encode())
            digest.update(encoded)
        return digest.hexdigest()

    def write(self, directory: Path) -> None:
        """Write the files under ``directory`` (which may exist; files are overwritten)."""
        for relative, text in self.files.items():
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text.encode("utf-8"))

    def catalog(self, revision: int | None = None) -> MappingCatalog:
        """Compile the files; ``revision`` (the deployed revision's number) goes into every label."""
        with tempfile.TemporaryDirectory(prefix="saleshub-mappings-") as scratch:
            directory = Path(scratch)
            self.write(directory)
            catalog = MappingCatalog.load(directory, revision=revision, packaged=False)
        catalog.origin = f"mapping revision r{revision}" if revision is not None else "stored files"
        return catalog
