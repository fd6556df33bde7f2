"""The adapter contract: what the hub needs to know about one source system's payloads.

An adapter knows its transport details, never the field mapping (that lives in ``mappings/``):

* ``decode`` turns body bytes into a document (JSON value or XML element), safely;
* ``classify`` reads the event type, idempotency key, source version and the order's reference from
  the document (cheap: intake runs it for every event before recording it);
* ``mapping_name`` picks the mapping file (``order`` unless overridden);
* ``source``, for a system the hub polls, names its ``SourceApi`` (``adapters.source``): how to ask
  a page after a cursor and read its records; ``None`` for a system that only pushes.

Its metadata is all the hub needs to know about the system besides: ``name``, the ``channels`` its
orders carry, the ``countries`` it serves, its ``transports`` and, for webhooks, ``body_schemas``
(the OpenAPI schema of a body per media type). The ``sales_systems`` row and its business-unit
links are written from it when the hub starts (``saleshub.runtime``), the webhook endpoint's OpenAPI
document is built from it (``saleshub.receive.openapi``), and ``scripts/serve.sh`` lists the systems
from the registry; a new system adds no migration.

``translate`` runs the whole chain and only ever raises ``DataError`` subclasses for bad input, so a
caller can quarantine on exactly that.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from adapters.source import SourceApi
from canonical.enums import TRANSPORTS, EventType, SalesChannel, Transport
from saleshub.errors import CancelsByReferenceError, ClassificationError
from saleshub.mapping.catalog import MappingSource
from saleshub.mapping.engine import MappedOrder
from saleshub.platform.limits import DEFAULT_MAX_BODY_BYTES

__all__ = ["SOURCE_TRANSPORTS", "Cancellation", "EventInfo", "SourceAdapter", "Translation"]

_SYSTEM_CODE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
#: What a source system may use; ``replay`` is the hub's own re-run of a recorded event.
SOURCE_TRANSPORTS: frozenset[Transport] = frozenset(t for t in TRANSPORTS if t != "replay")


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
    ``cancels`` is set for a cancellation that names the order by its reference alone (no delivery
    address, lines or totals to map): no mapping runs, and the hub writes the order's stored
    content as a new version in status ``CANCELLED`` (``order_key`` is then required).
    """

    event_type: EventType
    idempotency_key: str
    source_version: int | None
    mapping_name: str = "order"
    order_key: str | None = None
    cancels: Cancellation | None = None

    def __post_init__(self) -> None:
        if self.cancels is not None and (self.event_type is not EventType.CANCELLED or not self.order_key):
            raise ValueError("a cancellation by reference is a CANCELLED event naming its order_key")


@dataclass(frozen=True, slots=True)
class Cancellation:
    """What a cancellation by reference says besides the order it cancels: when and why.

    ``cancelled_at`` becomes the new version's ``source_updated_at`` (so an older cancellation
    than the stored order is stale, like any event), ``reason`` its ``cancellation_reason``.
    """

    reason: str | None = None
    cancelled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Translation:
    """A decoded, classified and mapped event."""

    event: EventInfo
    mapped: MappedOrder


class SourceAdapter(ABC):
    """Base class of every source-system adapter; subclasses set the system's code and metadata."""

    #: The system's code: the webhook path ``/webhooks/<system>``, its mapping directory, its row.
    system: ClassVar[str]
    #: The system's name for people (the ``sales_systems`` row's ``name``).
    name: ClassVar[str]
    #: The canonical sales channels its orders carry.
    channels: ClassVar[frozenset[SalesChannel]]
    #: The ISO 3166-1 alpha-2 codes of the countries it serves (its business units are theirs).
    countries: ClassVar[frozenset[str]]
    #: How its events reach the hub (``SOURCE_TRANSPORTS``); ``poll`` needs a ``source``.
    transports: ClassVar[frozenset[Transport]]
    media_types: ClassVar[frozenset[str]]
    #: The OpenAPI schema of a webhook body, per media type (for the endpoint's document).
    body_schemas: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
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
        cls._check_metadata(media)
        source = getattr(cls, "source", None)
        if source is not None and not (isinstance(source, type) and issubclass(source, SourceApi)):
            raise TypeError(f"{cls.__qualname__}.source must be a SourceApi subclass or None")
        if source is not None and source.system != system:
            raise TypeError(f"{cls.__qualname__}.source reads {source.system!r}, not {system!r}")
        if (source is not None) != ("poll" in cls.transports):
            raise TypeError(f"{cls.__qualname__}: transport 'poll' and a source API go together")

    @classmethod
    def _check_metadata(cls, media: frozenset[str]) -> None:
        who = cls.__qualname__
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"{who}.name must be the system's name for people, e.g. 'Pyxis'")
        channels = getattr(cls, "channels", None)
        if not isinstance(channels, frozenset) or not channels or not channels <= set(SalesChannel):
            known = ", ".join(SalesChannel)
            raise TypeError(f"{who}.channels must be a non-empty frozenset of SalesChannel ({known})")
        countries = getattr(cls, "countries", None)
        if (
            not isinstance(countries, frozenset)
            or not countries
            or not all(isinstance(c, str) and _COUNTRY.match(c) for c in countries)
        ):
            raise TypeError(f"{who}.countries must be a non-empty frozenset of ISO codes like 'ES'")
        transports = getattr(cls, "transports", None)
        if not isinstance(transports, frozenset) or not transports or not transports <= SOURCE_TRANSPORTS:
            known = ", ".join(sorted(SOURCE_TRANSPORTS))
            raise TypeError(f"{who}.transports must be a non-empty frozenset of {known}")
        schemas = getattr(cls, "body_schemas", None)
        if not isinstance(schemas, Mapping) or not set(schemas) <= media:
            raise TypeError(f"{who}.body_schemas must map some of its media_types to OpenAPI schemas")
        if schemas and "webhook" not in transports:
            raise TypeError(f"{who}.body_schemas describe webhook bodies, but 'webhook' is not a transport")

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
        """Decode, classify and map; raises only ``DataError`` subclasses for bad input.

        A cancellation by reference has nothing to map: ``CancelsByReferenceError`` says which
        order it cancels (the processor applies it to the stored order).
        """
        document = self.decode(body)
        event = self.classify(document)
        if event.cancels is not None and event.order_key is not None:
            raise CancelsByReferenceError(self.system, event.order_key)
        mapping = self.catalog.get(self.system, self.mapping_name(document, event))
        return Translation(event, mapping.apply(document))

    def fail(self, reason: str) -> ClassificationError:
        """A classification error of this system (for ``raise self.fail(...)``)."""
        return ClassificationError(self.system, reason)
