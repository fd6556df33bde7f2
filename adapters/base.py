"""The adapter contract: what the hub needs to know about one source system's payloads.

An adapter knows its transport details, never the field mapping (that lives in ``mappings/``):

* ``decode`` turns body bytes into a document (JSON value or XML element), safely;
* ``classify`` reads the event type, idempotency key, source version and the order's reference from
  the document (cheap: intake runs it for every event before recording it);
* ``mapping_name`` picks the mapping file (``order`` unless overridden);
* ``source``, for a system the hub polls, names its ``SourceApi`` (``adapters.source``): how to ask
  a page after a cursor and read its records; ``None`` for a system that only pushes.

``translate`` runs the whole chain and only ever raises ``DataError`` subclasses for bad input, so a
caller can quarantine on exactly that.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from adapters.source import SourceApi
from canonical.enums import EventType
from saleshub.errors import ClassificationError
from saleshub.mapping.catalog import MappingSource
from saleshub.mapping.engine import MappedOrder
from saleshub.platform.limits import DEFAULT_MAX_BODY_BYTES

__all__ = ["EventInfo", "SourceAdapter", "Translation"]

_SYSTEM_CODE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")


@dataclass(frozen=True, slots=True)
class EventInfo:
    """What an inbound event is: its type, idempotency key, the order's source version and reference.

    ``idempotency_key`` tells one event from another: an event the hub holds under the same key is
    a repeat and records nothing. So it must differ between two versions of an order: the source's
    event id, its revision, or a digest of the content, never a change time alone (a source that
    writes times to the second changes an order twice within one).
    ``order_key`` is the source's own reference of the order (the value the mapping reads as
    ``external_order_id``), learned at intake so an order's events are processed one after another;
    ``None`` when the body does not carry it where the adapter looks (the mapping then decides).
    """

    event_type: EventType
    idempotency_key: str
    source_version: int | None
    mapping_name: str = "order"
    order_key: str | None = None


@dataclass(frozen=True, slots=True)
class Translation:
    """A decoded, classified and mapped event."""

    event: EventInfo
    mapped: MappedOrder


class SourceAdapter(ABC):
    """Base class of every source-system adapter; subclasses set ``system`` and ``media_types``."""

    system: ClassVar[str]
    media_types: ClassVar[frozenset[str]]
    #: The source API the hub polls for this system's records, if it has one.
    source: ClassVar[type[SourceApi] | None] = None

    def __init__(self, catalog: MappingSource, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.catalog = catalog
        #: The largest body ``decode`` accepts: the hub passes its one configured limit
        #: (``web.max_body_bytes``), the same the webhook endpoint answers 413 above.
        self.max_body_bytes = max_body_bytes

    @classmethod
    def check_definition(cls) -> None:
        """Raise ``TypeError`` if the subclass does not define what the contract asks."""
        system = getattr(cls, "system", None)
        if not isinstance(system, str) or not _SYSTEM_CODE.match(system):
            raise TypeError(f"{cls.__qualname__}.system must be a lower-case code like 'pyxis'")
        media = getattr(cls, "media_types", None)
        if not isinstance(media, frozenset) or not media:
            raise TypeError(f"{cls.__qualname__}.media_types must be a non-empty frozenset")
        source = getattr(cls, "source", None)
        if source is not None and not (isinstance(source, type) and issubclass(source, SourceApi)):
            raise TypeError(f"{cls.__qualname__}.source must be a SourceApi subclass or None")
        if source is not None and source.system != system:
            raise TypeError(f"{cls.__qualname__}.source reads {source.system!r}, not {system!r}")

    def accepts(self, content_type: str | None) -> bool:
        """Whether a body of this ``Content-Type`` (parameters ignored) can be decoded."""
        if content_type is None:
            return False
        media = content_type.split(";", 1)[0].strip().lower()
        return media in self.media_types

    @abstractmethod
    def decode(self, body: bytes) -> Any:
        """The body as a document; raises ``DecodeError``."""

    @abstractmethod
    def classify(self, document: Any) -> EventInfo:
        """The event's type, key and version; raises ``ClassificationError``."""

    def mapping_name(self, document: Any, event: EventInfo) -> str:
        """Which mapping file of this system applies (default: the event's ``mapping_name``)."""
        return event.mapping_name

    def translate(self, body: bytes) -> Translation:
        """Decode, classify and map; raises only ``DataError`` subclasses for bad input."""
        document = self.decode(body)
        event = self.classify(document)
        mapping = self.catalog.get(self.system, self.mapping_name(document, event))
        return Translation(event, mapping.apply(document))

    def fail(self, reason: str) -> ClassificationError:
        """A classification error of this system (for ``raise self.fail(...)``)."""
        return ClassificationError(self.system, reason)
