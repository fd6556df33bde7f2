"""The personal-data list: one definition, documented in docs/privacy.md, and what follows from it.

``notes`` is personal data (free text a call centre fills with names and phone numbers): it is masked
in log lines, field errors and reconciliation differences like every other personal field.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from canonical import PERSONAL_DATA_FIELDS, is_personal_field
from reconciliation.fields import field_differences, parse_order
from reconciliation.rules import FieldRules
from saleshub.mapping.nodes import Run
from saleshub.platform.masking import MASK, mask
from tests.conftest import MAPPINGS, ROOT
from tests.support.orders import canonical_order

PRIVACY = ROOT / "docs" / "privacy.md"


def section(text: str, name: str) -> str:
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    assert start in text and end in text, f"docs/privacy.md has no {name} block"
    return text.split(start, 1)[1].split(end, 1)[0]


def test_the_documented_personal_fields_are_the_model_s_list() -> None:
    table = section(PRIVACY.read_text(encoding="utf-8"), "personal-fields")
    documented = re.findall(r"^\| `([a-z0-9_.]+)` \|", table, flags=re.MULTILINE)
    assert len(documented) == len(set(documented))
    assert set(documented) == PERSONAL_DATA_FIELDS


def test_place_facts_are_not_personal_and_notes_is() -> None:
    for field in ("service_address.postal_code", "service_address.city", "service_address.region"):
        assert not is_personal_field(field)
    assert not is_personal_field("country_code") and not is_personal_field("service_address.country_code")
    assert is_personal_field("notes")


def test_notes_are_masked_in_log_lines_field_errors_and_reconciliation() -> None:
    assert mask('{"notes": "ask for Ana at the back door"}') == f'{{"notes": "{MASK}"}}'
    run = Run()
    run.fail("notes", "order.notes", "is too long", "ask for Ana at the back door")
    assert run.errors[0].personal and "Ana" not in str(run.errors[0])

    hub = canonical_order("PYX-1", notes="ring twice")
    document = json.loads(hub.model_dump_json())
    document["notes"] = "ask for Ana at the back door"
    source = parse_order(document)
    assert not isinstance(source, str)
    (difference,) = field_differences(hub, source, FieldRules())
    assert difference.field == "notes"
    assert difference.hub == difference.source == "(personal data)"


def test_the_refusal_shown_in_docs_privacy_is_what_validate_prints(tmp_path: Path) -> None:
    text = PRIVACY.read_text(encoding="utf-8")
    example = re.search(r"```yaml\n  system_metadata:\n    fields:\n(      contact: .*\n)```", text)
    assert example is not None, "docs/privacy.md lost the example rule"
    mappings = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, mappings)
    pyxis = mappings / "pyxis" / "order.yaml"
    assert pyxis.read_text(encoding="utf-8").rstrip().splitlines()[-1].startswith("      web_session:")
    with pyxis.open("a", encoding="utf-8") as handle:  # system_metadata is the file's last block
        handle.write(example.group(1))
    done = subprocess.run(
        [sys.executable, "-m", "saleshub", "mappings", "validate", "--dir", str(mappings)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
        check=False,
        timeout=300,
    )
    assert done.returncode == 1
    shown = section(text, "leak-message").removeprefix("```text\n").removesuffix("```\n")
    assert done.stderr == shown


def test_the_acknowledgement_shown_in_docs_privacy_is_the_pyxis_mapping_s() -> None:
    text = PRIVACY.read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(      loyalty_card:\n.*?)```", text, flags=re.DOTALL)
    assert example is not None
    assert example.group(1) in (MAPPINGS / "pyxis" / "order.yaml").read_text(encoding="utf-8")
