"""The adapter registry: source-system name → adapter class, built-ins plus plug-ins.

Built-in adapters are listed explicitly in ``BUILTIN_ADAPTERS``; third-party packages add theirs
through the ``saleshub.adapters`` entry-point group (name = system code, value = the class)::

    [project.entry-points."saleshub.adapters"]
    acme = "saleshub_acme:AcmeAdapter"

Nothing registers itself on import. Every class is checked when it registers, two classes claiming
one name is an error, and asking for an unknown name lists the known ones.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from adapters.base import SourceAdapter
from adapters.erp import ErpAdapter
from adapters.pyxis import PyxisAdapter
from adapters.tempo import TempoAdapter
from saleshub.errors import ConfigurationError, UnknownAdapterError
from saleshub.mapping.catalog import MappingSource
from saleshub.platform.limits import DEFAULT_MAX_BODY_BYTES

__all__ = ["BUILTIN_ADAPTERS", "ENTRY_POINT_GROUP", "AdapterRegistry"]

ENTRY_POINT_GROUP = "saleshub.adapters"
BUILTIN_ADAPTERS: tuple[type[SourceAdapter], ...] = (PyxisAdapter, TempoAdapter, ErpAdapter)


class AdapterRegistry:
    """Adapter classes by system code."""

    def __init__(self) -> None:
        self._classes: dict[str, type[SourceAdapter]] = {}

    @classmethod
    def default(cls) -> AdapterRegistry:
        """The built-in adapters plus every installed ``saleshub.adapters`` plug-in."""
        registry = cls()
        for adapter in BUILTIN_ADAPTERS:
            registry.register(adapter)
        registry.load_entry_points()
        return registry

    def register(self, adapter: type[SourceAdapter], name: str | None = None) -> None:
        """Add ``adapter``; raises ``ConfigurationError`` if it is malformed or the name is taken."""
        if not (isinstance(adapter, type) and issubclass(adapter, SourceAdapter)):
            raise ConfigurationError(f"{adapter!r} is not a SourceAdapter subclass")
        try:
            adapter.check_definition()
        except TypeError as exc:
            raise ConfigurationError(f"adapter {adapter.__qualname__} is malformed: {exc}") from exc
        if name is not None and name != adapter.system:
            raise ConfigurationError(
                f"entry point {name!r} points at {adapter.__qualname__}, whose system is {adapter.system!r}"
            )
        existing = self._classes.get(adapter.system)
        if existing is not None and existing is not adapter:
            raise ConfigurationError(
                f"system {adapter.system!r} is claimed by both {existing.__module__}.{existing.__qualname__}"
                f" and {adapter.__module__}.{adapter.__qualname__}"
            )
        self._classes[adapter.system] = adapter

    def load_entry_points(self) -> None:
        """Register every adapter published in the ``saleshub.adapters`` entry-point group."""
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = entry.load()
            except Exception as exc:  # a broken plug-in must name itself, whatever it raised
                raise ConfigurationError(
                    f"adapter plug-in {entry.name!r} ({entry.value}) cannot be imported: {exc}"
                ) from exc
            self.register(loaded, entry.name)

    def names(self) -> list[str]:
        """Registered system codes, sorted."""
        return sorted(self._classes)

    def classes(self) -> list[type[SourceAdapter]]:
        """The registered adapter classes, in the order of their system codes."""
        return [self._classes[name] for name in self.names()]

    def adapter_class(self, name: str) -> type[SourceAdapter]:
        """The class registered for ``name``; ``UnknownAdapterError`` lists the known ones."""
        found = self._classes.get(name)
        if found is None:
            raise UnknownAdapterError(name, self.names())
        return found

    def create(
        self, name: str, catalog: MappingSource, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ) -> SourceAdapter:
        """An adapter instance for ``name`` using ``catalog``'s mappings and the body-size limit."""
        return self.adapter_class(name)(catalog, max_body_bytes=max_body_bytes)
