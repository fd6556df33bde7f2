"""The stewards' mapping files, as committed, satisfy the committed mapping-file schema.

Editors validate against ``contracts/mapping-file.schema.json``; a file the hub accepts but the
schema refuses (or the reverse) would mislead a steward. The unit tests check the schema against the
test fixtures; this checks the live files.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_every_committed_mapping_file_satisfies_the_committed_schema() -> None:
    schema = json.loads((ROOT / "contracts" / "mapping-file.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    paths = sorted((ROOT / "mappings").glob("*/*.yaml"))
    assert paths, "no mapping files under mappings/"
    for path in paths:
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text(encoding="utf-8"))))
        assert not errors, f"{path.relative_to(ROOT)}: {errors[0].message}"
