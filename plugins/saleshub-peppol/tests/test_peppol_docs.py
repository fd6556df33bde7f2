"""The plug-in's README states what it takes as a table: the table is the code's list of kinds."""

from __future__ import annotations

import re
from pathlib import Path

from saleshub_peppol import PeppolAdapter
from saleshub_peppol.documents import KINDS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_the_table_of_documents_is_the_list_of_kinds() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (T\d+) \|", README, re.M)
    assert rows == [(kind.name, kind.transaction) for kind in KINDS.values()]


def test_the_readme_names_the_entry_points_the_package_declares() -> None:
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert f'{PeppolAdapter.system} = "saleshub_peppol:PeppolAdapter"' in pyproject
    assert f'{PeppolAdapter.system} = "saleshub_peppol.mappings"' in pyproject
    assert "`saleshub.adapters`: `peppol`" in README and "`saleshub.mappings`" in README
