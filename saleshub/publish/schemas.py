"""The writer schemas of outbound events and strict Avro encoding against them.

The current schema of each kind is derived from the canonical model (``canonical.events``); a test
keeps it equal to the newest committed version in ``contracts/avro/events``. Each schema is known by
its CRC-64-AVRO fingerprint (of its parsing canonical form), the id used by Avro single-object
encoding and stored with every outbox row, so a relay can frame a row written by an older hub version
as long as that version is among the committed contracts.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from canonical.events import EventKind, event_schema
from saleshub.errors import ConfigurationError

__all__ = ["EventSchemas", "WriterSchema"]


@dataclass(frozen=True, slots=True)
class WriterSchema:
    """One schema a payload can be written with: its kind, JSON text, parsed form and fingerprint."""

    kind: EventKind
    text: str
    parsed: Any
    fingerprint: bytes  # 8 bytes, little-endian, as single-object encoding writes it

    @classmethod
    def of(cls, kind: EventKind, schema: dict[str, Any]) -> WriterSchema:
        """Parse ``schema`` (a JSON-like Avro schema) and fingerprint it."""
        parsed = parse_schema(schema)
        digest = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
        return cls(kind, json.dumps(schema, separators=(",", ":")), parsed, digest)

    @property
    def fingerprint_id(self) -> int:
        """The fingerprint as the signed 64-bit integer stored in ``event_outbox.schema_fingerprint``."""
        return int.from_bytes(self.fingerprint, "little", signed=True)

    def encode(self, record: dict[str, Any]) -> bytes:
        """The Avro binary body of ``record``; a missing, extra or mistyped field raises ``ValueError``."""
        buffer = io.BytesIO()
        schemaless_writer(buffer, self.parsed, record, strict=True)
        return buffer.getvalue()

    def decode(self, body: bytes, reader: WriterSchema | None = None) -> dict[str, Any]:
        """Read a body written with this schema (resolved to ``reader``'s schema when given)."""
        record = schemaless_reader(io.BytesIO(body), self.parsed, reader.parsed if reader else None)
        if not isinstance(record, dict):
            raise ValueError(f"{self.kind.value}: the body is not a record")
        return record


class EventSchemas:
    """The current writer schema of every kind, and every known schema by fingerprint."""

    def __init__(self, committed: list[WriterSchema] | None = None) -> None:
        self.current = {kind: WriterSchema.of(kind, event_schema(kind)) for kind in EventKind}
        self._by_id = {schema.fingerprint_id: schema for schema in committed or []}
        self._by_id.update({schema.fingerprint_id: schema for schema in self.current.values()})

    @classmethod
    def load(cls, directory: Path | None) -> EventSchemas:
        """The current schemas plus the committed versions under ``directory``/<kind>/v<N>.avsc."""
        committed: list[WriterSchema] = []
        if directory is not None and directory.is_dir():
            for kind in EventKind:
                for path in sorted((directory / kind.value).glob("v*.avsc")):
                    try:
                        committed.append(WriterSchema.of(kind, json.loads(path.read_text("utf-8"))))
                    except (ValueError, TypeError) as exc:
                        raise ConfigurationError(f"{path}: not a valid Avro schema: {exc}") from exc
        return cls(committed)

    def by_id(self, fingerprint_id: int) -> WriterSchema:
        """The schema with this fingerprint; ``KeyError`` names it when this hub does not know it."""
        try:
            return self._by_id[fingerprint_id]
        except KeyError:
            digest = fingerprint_id.to_bytes(8, "little", signed=True).hex()
            raise KeyError(f"no known event schema has the fingerprint {digest}") from None
