"""The JSON Schema of the mapping-file format, generated from the pydantic models in ``spec``.

Committed as ``contracts/mapping-file.schema.json``; a test keeps the file equal to this output. Point
an editor at it (e.g. ``# yaml-language-server: $schema=../../contracts/mapping-file.schema.json``)
to get completion and checks while typing.
"""

from __future__ import annotations

from typing import Any

from saleshub.mapping.spec import MappingFile

__all__ = ["SCHEMA_ID", "mapping_file_schema"]

SCHEMA_ID = "urn:saleshub:mapping-file:1"


def mapping_file_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one mapping file."""
    schema = MappingFile.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
