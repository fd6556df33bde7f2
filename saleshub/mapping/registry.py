"""The mappings a running hub maps with, switched atomically when a new revision is deployed.

Adapters hold the runtime's ``MappingRegistry`` as their mapping source. ``install`` replaces the
whole catalog in one reference assignment, so every ``get`` answers from one revision or the next,
never a mixture: an event is mapped entirely by the revision that ``get`` returned its mapping
from, and that revision's number is in the mapping's label, which the event records.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.engine import CompiledMapping

__all__ = ["MappingRegistry"]


class MappingRegistry:
    """The current mapping catalog of one process and the deployed revision it came from."""

    def __init__(self, catalog: MappingCatalog, revision: int | None = None) -> None:
        self._state: tuple[MappingCatalog, int | None] = (catalog, revision)
        self._lock = threading.Lock()

    @property
    def catalog(self) -> MappingCatalog:
        """The catalog in use now."""
        return self._state[0]

    @property
    def revision(self) -> int | None:
        """The deployed revision in use (``None``: files read from a directory)."""
        return self._state[1]

    def install(self, catalog: MappingCatalog, revision: int | None) -> bool:
        """Switch to ``catalog`` (revision ``revision``); False if that revision is already in use."""
        with self._lock:
            if revision is not None and revision == self._state[1]:
                return False
            self._state = (catalog, revision)
            return True

    def get(self, system: str, name: str = "order") -> CompiledMapping:
        """The mapping ``name`` of ``system`` in the current revision."""
        return self._state[0].get(system, name)

    def __iter__(self) -> Iterator[CompiledMapping]:
        return iter(self._state[0])

    def __len__(self) -> int:
        return len(self._state[0])
