"""Where a source's manifest comes from: the ``SourceManifestReader`` seam and its file-backed reader.

A manifest lists, for a time window, every order the source holds: its external order id (one or
several key columns), its source version and/or updated-at, and its canonical content fingerprint.
A row may also carry the canonical order itself (column or key ``order``, canonical JSON): then the
fingerprint may be left out (it is computed from the order) and a content mismatch shows field
differences.

Readers hand the manifest over as bytes in one of two formats, CSV with a header or JSON lines,
which the store loads with ``COPY``. A reader backed by a source's API (built on the adapter's
client) writes JSON lines with ``order`` set to the source document mapped through the adapter and
its mapping, and plugs in here without other changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from reconciliation.model import Window
from saleshub.errors import ManifestError
from saleshub.store.manifest import ManifestFormat

__all__ = ["FileManifestReader", "ManifestFormat", "SourceManifestReader"]

_SUFFIXES = {".csv": ManifestFormat.CSV, ".jsonl": ManifestFormat.JSONL, ".ndjson": ManifestFormat.JSONL}
_CHUNK = 1 << 20


@runtime_checkable
class SourceManifestReader(Protocol):
    """Gives the manifest rows of one source system for a window."""

    @property
    def system(self) -> str:
        """The sales system whose manifest this is."""
        ...

    @property
    def description(self) -> str:
        """Where the manifest comes from, for the run's record (a file name or an API; no path)."""
        ...

    @property
    def format(self) -> ManifestFormat:
        """The format of the bytes ``chunks`` yields."""
        ...

    def size(self) -> int | None:
        """Total bytes ``chunks`` will yield, when known (for a progress bar)."""
        ...

    def chunks(self, window: Window) -> Iterator[bytes]:
        """The manifest of ``window`` as consecutive byte chunks."""
        ...


class FileManifestReader:
    """A manifest exported to a file: ``.csv`` (with a header row) or ``.jsonl`` / ``.ndjson``.

    The file holds what the source exported; rows outside the window are left out by the comparison
    (by their updated-at, when they carry one).
    """

    def __init__(self, system: str, path: Path, fmt: ManifestFormat | None = None) -> None:
        self._system, self.path = system, path
        if fmt is None:
            fmt = _SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            raise ManifestError(
                path.name, None, f"cannot tell the format from the suffix; use one of {', '.join(_SUFFIXES)}"
            )
        self._format = fmt
        if not path.is_file():
            raise ManifestError(path.name, None, "no such file")

    @property
    def system(self) -> str:
        """The sales system whose manifest this is."""
        return self._system

    @property
    def description(self) -> str:
        """``file NAME`` (the name only, never the machine's path)."""
        return f"file {self.path.name}"

    @property
    def format(self) -> ManifestFormat:
        """CSV or JSON lines, from the file's suffix."""
        return self._format

    def size(self) -> int | None:
        """The file's size in bytes."""
        return self.path.stat().st_size

    def chunks(self, window: Window) -> Iterator[bytes]:
        """The file's bytes in 1 MiB chunks (the window is applied by the comparison)."""
        with self.path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                yield chunk
