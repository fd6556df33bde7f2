"""A broken mapping directory reports every problem at once, with file and line, and exits 1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.pyxis import PyxisAdapter
from saleshub.cli import app
from saleshub.errors import MappingError, MappingLoadError
from saleshub.mapping.catalog import MappingCatalog
from tests.conftest import FIXTURE_MAPPINGS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mappings(tmp_path: Path) -> Path:
    target = tmp_path / "mappings"
    shutil.copytree(FIXTURE_MAPPINGS, target)
    return target


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def issues_of(directory: Path) -> list[str]:
    with pytest.raises(MappingLoadError) as info:
        MappingCatalog.load(directory)
    return [str(issue) for issue in info.value.issues]


def test_every_problem_is_reported_together_with_file_and_line(mappings: Path) -> None:
    pyxis = mappings / "pyxis/order.yaml"
    replace(pyxis, "  notes: {path: order.notes}", "  remarks: {path: order.notes}")
    replace(
        pyxis, "lookup: {table: service_types, column: pyxis}", "lookup: {table: servce_types, column: pyxis}"
    )
    replace(mappings / "crosswalks/products.csv", "SVC-TRAVEL,PX-100900", "SVC-TRAVEL,PX-100234")
    tempo = mappings / "tempo/order.yaml"
    replace(tempo, 'revision: "2026.11.1"\n', "revision: [unclosed\n")

    found = issues_of(mappings)
    text = "\n".join(found)
    remarks_line = line_of(pyxis, "remarks:")
    assert f"pyxis/order.yaml:{remarks_line}: remarks: ServiceOrder has no field 'remarks'" in text
    table_line = line_of(pyxis, "servce_types")
    assert f"pyxis/order.yaml:{table_line}: service_type.lookup.table: no crosswalk servce_types.csv" in text
    assert "known crosswalks: business_units, channels" in text
    duplicate_line = line_of(mappings / "crosswalks/products.csv", "SVC-TRAVEL")
    assert (
        f"crosswalks/products.csv:{duplicate_line}: pyxis: code 'PX-100234' appears twice in column 'pyxis' "
        "(first on line 2)" in text
    )
    assert any(i.startswith("tempo/order.yaml:") and "not valid YAML" in i for i in found)
    assert len(found) >= 4


def test_unknown_keys_get_a_suggestion_and_duplicate_keys_both_lines(mappings: Path) -> None:
    erp = mappings / "erp/order.yaml"
    replace(erp, "  notes: {path: Comments}", "  notes: {pth: Comments}\n  notes: {path: Comments}")
    found = "\n".join(issues_of(mappings))
    line = line_of(erp, "pth: Comments")
    assert f"erp/order.yaml:{line + 1}: notes: duplicate key (first defined on line {line})" in found
    assert f"erp/order.yaml:{line}: notes.pth: unknown key 'pth'; did you mean 'path'?" in found


def test_type_and_enum_mistakes_are_caught_at_load(mappings: Path) -> None:
    pyxis = mappings / "pyxis/order.yaml"
    replace(
        pyxis,
        "ordered_at: {path: order.createdAt, type: datetime, required: true}",
        "ordered_at: {path: order.createdAt, required: true}",
    )
    replace(pyxis, "{const: CANCELLED, when:", "{const: CANCELED, when:")
    replace(mappings / "crosswalks/channels.csv", "ONLINE,WEB", "ONLNE,WEB")
    replace(
        pyxis, "expr: \"concat(country, '-', banner)\"", "expr: \"__import__('os').system(country + banner)\""
    )
    found = "\n".join(issues_of(mappings))
    assert "ordered_at needs type datetime, not string" in found
    assert "'CANCELED' is not an OrderStatus; expected one of RECEIVED" in found
    assert "crosswalks/channels.csv:3: canonical: 'ONLNE' is not a SalesChannel" in found
    assert "function \"__import__('os').system\" is not allowed" in found


def test_required_fields_must_be_mapped(mappings: Path) -> None:
    erp = mappings / "erp/order.yaml"
    replace(erp, "  ordered_at: {path: TransactionOn, type: datetime, required: true}\n", "")
    found = "\n".join(issues_of(mappings))
    assert "required canonical field ordered_at is not mapped" in found


def test_crosswalk_with_empty_result_and_stray_spaces(mappings: Path) -> None:
    units = mappings / "crosswalks/units.csv"
    replace(units, "H,H,GODZ,HR,Hour", ",H,GODZ,HR,Hour")
    replace(units, "M,M,MB,m,Metre", "M,M , MB,m,Metre")
    found = "\n".join(issues_of(mappings))
    assert "crosswalks/units.csv:5: canonical: code 'H' maps to an empty 'canonical' value" in found
    assert "crosswalks/units.csv:4: pyxis: value 'M ' has leading or trailing spaces" in found


def test_mapping_must_live_where_it_says(mappings: Path) -> None:
    tempo = mappings / "tempo/order.yaml"
    replace(tempo, "system: tempo", "system: pyxis")
    found = "\n".join(issues_of(mappings))
    assert (
        f"tempo/order.yaml:{line_of(tempo, 'system: pyxis')}: system: says system 'pyxis' but lives in tempo/"
        in found
    )


def test_cli_validate_lists_every_problem_and_exits_1(mappings: Path) -> None:
    replace(mappings / "pyxis/order.yaml", "  notes: {path: order.notes}", "  remarks: {path: order.notes}")
    replace(mappings / "crosswalks/products.csv", "SVC-TRAVEL,PX-100900", "SVC-TRAVEL,PX-100234")
    result = CliRunner().invoke(app, ["mappings", "validate", "--dir", str(mappings)])
    assert result.exit_code == 1
    assert "remarks" in result.output
    assert "appears twice" in result.output


def test_cli_validate_passes_on_the_repository_mappings() -> None:
    result = CliRunner().invoke(app, ["mappings", "validate", "--dir", str(FIXTURE_MAPPINGS)])
    assert result.exit_code == 0, result.output
    assert "pyxis" in result.output


def test_a_lookup_may_mark_its_column_optional_in_a_shared_crosswalk(mappings: Path) -> None:
    """A plug-in system's column a steward has not added yet: codes are missing, the file loads."""
    pyxis = mappings / "pyxis/order.yaml"
    replace(
        pyxis, "lookup: {table: service_types, column: pyxis}", "lookup: {table: service_types, column: acme}"
    )
    assert any("has no column 'acme'" in issue for issue in issues_of(mappings))

    replace(
        pyxis,
        "lookup: {table: service_types, column: acme}",
        "lookup: {table: service_types, column: acme, optional_column: true}",
    )
    catalog = MappingCatalog.load(mappings)
    body = (ROOT / "contracts/samples/pyxis/01_es_in_store_created.json").read_bytes()
    with pytest.raises(MappingError) as info:
        PyxisAdapter(catalog).translate(body)
    rules = [error.rule for error in info.value.errors if error.target == "service_type"]
    assert rules == [
        "crosswalks/service_types.csv has no column 'acme' yet; add the column and a row for this code"
    ]
