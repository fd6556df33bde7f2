"""How an Avro body is framed in a Kafka record value, so a reader can find the writer schema.

* **Schema registry** (when a registry URL is configured): the Confluent wire format, a zero magic
  byte, the 4-byte big-endian schema id, then the body. Schemas are registered under the topic's
  ``{topic}-value`` subject (TopicNameStrategy) with the registry client of ``confluent-kafka``;
  ids are cached, so the registry is asked once per schema and topic.
* **Single-object encoding** (no registry): the Avro specification's ``C3 01`` marker, the 8-byte
  little-endian CRC-64-AVRO fingerprint of the writer schema, then the body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from saleshub.publish.schemas import WriterSchema

__all__ = [
    "REGISTRY_MAGIC",
    "SINGLE_OBJECT_MARKER",
    "Framed",
    "Framing",
    "RegistryFraming",
    "SingleObjectFraming",
    "unframe",
]

SINGLE_OBJECT_MARKER = b"\xc3\x01"
REGISTRY_MAGIC = b"\x00"


class Framing(Protocol):
    """Frames Avro bodies for one topic's record values."""

    def frame(self, topic: str, schema: WriterSchema, body: bytes) -> bytes:
        """The record value for ``body`` written with ``schema`` on ``topic``."""
        ...

    def dataschema(self, topic: str, schema: WriterSchema) -> str:
        """The CloudEvents ``dataschema`` URI naming the writer schema."""
        ...


class SingleObjectFraming:
    """Avro single-object encoding: ``C3 01`` + CRC-64-AVRO fingerprint + body."""

    def frame(self, topic: str, schema: WriterSchema, body: bytes) -> bytes:
        """``C3 01``, the fingerprint, the body."""
        return SINGLE_OBJECT_MARKER + schema.fingerprint + body

    def dataschema(self, topic: str, schema: WriterSchema) -> str:
        """``urn:avro:crc-64-avro:<fingerprint hex>``."""
        return f"urn:avro:crc-64-avro:{schema.fingerprint.hex()}"


class RegistryFraming:
    """Confluent schema-registry wire format: ``00`` + schema id (4 bytes, big-endian) + body."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._client = SchemaRegistryClient({"url": self.url})
        self._ids: dict[tuple[str, bytes], int] = {}

    def schema_id(self, topic: str, schema: WriterSchema) -> int:
        """The registry id of ``schema`` under ``{topic}-value``, registering it the first time."""
        key = (topic, schema.fingerprint)
        if key not in self._ids:
            self._ids[key] = self._client.register_schema(f"{topic}-value", Schema(schema.text, "AVRO"))
        return self._ids[key]

    def frame(self, topic: str, schema: WriterSchema, body: bytes) -> bytes:
        """``00``, the schema id, the body."""
        return REGISTRY_MAGIC + self.schema_id(topic, schema).to_bytes(4, "big") + body

    def dataschema(self, topic: str, schema: WriterSchema) -> str:
        """The registry's URL of the schema: ``{registry}/schemas/ids/{id}``."""
        return f"{self.url}/schemas/ids/{self.schema_id(topic, schema)}"


@dataclass(frozen=True, slots=True)
class Framed:
    """A record value taken apart: which framing, the schema reference, and the Avro body."""

    framing: str  # "single-object" or "registry"
    schema_ref: bytes | int  # the fingerprint bytes, or the registry id
    body: bytes


def unframe(value: bytes) -> Framed:
    """Split a record value written by either framing; ``ValueError`` if it is neither."""
    if value[:2] == SINGLE_OBJECT_MARKER and len(value) >= 10:
        return Framed("single-object", value[2:10], value[10:])
    if value[:1] == REGISTRY_MAGIC and len(value) >= 5:
        return Framed("registry", int.from_bytes(value[1:5], "big"), value[5:])
    raise ValueError(f"not an Avro single-object or schema-registry framed value (starts {value[:4].hex()})")
