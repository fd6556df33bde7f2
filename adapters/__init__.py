"""Source-system adapters (Pyxis, Tempo, the ERP) behind one small contract, and their registry."""

from adapters.base import EventInfo, SourceAdapter, Translation
from adapters.registry import BUILTIN_ADAPTERS, ENTRY_POINT_GROUP, AdapterRegistry

__all__ = [
    "BUILTIN_ADAPTERS",
    "ENTRY_POINT_GROUP",
    "AdapterRegistry",
    "EventInfo",
    "SourceAdapter",
    "Translation",
]
