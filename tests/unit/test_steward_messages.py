"""Errors a data steward can act on: what Excel, a YAML slip or a typo produce, in plain words."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.registry import AdapterRegistry
from saleshub.cli import app
from saleshub.errors import MappingError, MappingLoadError
from saleshub.mapping.catalog import MappingCatalog

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mappings(tmp_path: Path) -> Path:
    target = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", target)
    return target


def issues_of(directory: Path) -> list[str]:
    with pytest.raises(MappingLoadError) as info:
        MappingCatalog.load(directory)
    return [str(issue) for issue in info.value.issues]


def test_a_crosswalk_saved_with_semicolons_is_named_once(mappings: Path) -> None:
    channels = mappings / "crosswalks" / "channels.csv"
    channels.write_text(channels.read_text(encoding="utf-8").replace(",", ";"), encoding="utf-8")
    found = issues_of(mappings)
    assert found == [
        "crosswalks/channels.csv:1: is separated by ';' (as Excel saves CSV with Spanish, French, "
        "Italian or Polish settings); save it as 'CSV UTF-8 (comma delimited)', or replace the ';' with ','"
    ]


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        (
            "  store_code: {path: order.storeId, transform: [trim]}",
            "  store_code: {path: order.storeId, transform: [trim]\n",
            "a { } group is not closed",
        ),
        ("description: Pyxis", "description: Pyxis: webhook", "quote a value that contains ': '"),
        ("  store_code: {path", "\tstore_code: {path", "indent with spaces only"),
    ],
)
def test_yaml_mistakes_are_told_in_plain_words_with_the_line(
    mappings: Path, old: str, new: str, words: str
) -> None:
    pyxis = mappings / "pyxis" / "order.yaml"
    text = pyxis.read_text(encoding="utf-8")
    assert old in text
    pyxis.write_text(text.replace(old, new, 1), encoding="utf-8")
    [found] = issues_of(mappings)
    assert found.startswith("pyxis/order.yaml:") and "is not valid YAML (column" in found
    assert words in found, found
    assert "\n" not in found


def test_an_unknown_target_field_gets_a_suggestion(mappings: Path) -> None:
    pyxis = mappings / "pyxis" / "order.yaml"
    pyxis.write_text(pyxis.read_text(encoding="utf-8").replace("  notes:", "  note:", 1), encoding="utf-8")
    [found] = issues_of(mappings)
    assert "ServiceOrder has no field 'note'; did you mean 'notes'?" in found


def test_a_problem_reached_twice_is_printed_once(mappings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    units = mappings / "crosswalks" / "units.csv"
    units.write_text(units.read_text(encoding="utf-8") + "PCE,PCE,SZT,EA,again\n", encoding="utf-8")
    monkeypatch.setenv("COLUMNS", "250")
    result = CliRunner().invoke(app, ["mappings", "validate", "--dir", str(mappings)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), result.output
    assert "Traceback" not in result.output


def test_xml_positions_in_error_paths_count_from_one() -> None:
    adapter = AdapterRegistry.default().create("tempo", MappingCatalog.load(ROOT / "mappings"))
    body = (ROOT / "contracts/samples/tempo/01_pl_in_store_installation.xml").read_bytes()
    assert body.count(b"<tso:Quantity>3,000") == 1
    with pytest.raises(MappingError) as info:
        adapter.translate(body.replace(b"<tso:Quantity>3,000", b"<tso:Quantity>x"))
    [error] = info.value.errors
    # The second line: canonical lines[1] (a JSON list index), XPath t:Line[2] (XPath counts from 1).
    assert error.target == "lines[1].quantity"
    assert error.source == "t:Order/t:Lines/t:Line[2]/t:Quantity"


def test_cli_errors_are_one_clean_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    for args in (
        ["mappings", "validate", "--dir", str(tmp_path / "none")],
        ["mappings", "preview", "pyxis", str(tmp_path / "none.json")],
        ["mappings", "test", "acme", "--dir", str(ROOT / "mappings"), "--samples", str(tmp_path)],
        ["webhooks", "send", "acme", str(ROOT / "contracts/samples/pyxis/01_es_in_store_created.json")],
        ["events", "list", "--status", "lost"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code != 0, args
        assert ("Traceback" not in result.output and result.exception is None) or isinstance(
            result.exception, SystemExit
        ), (args, result.output)
        assert result.output.strip(), args


def test_flags_show_no_type_in_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["mappings", "test", "--help"])
    assert "--update" in result.output and "<bool>" not in result.output


def test_the_installed_command_never_prints_a_traceback(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "SALESHUB_WEB__PORT": "0", "SALESHUB_DATABASE__DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "saleshub", "orders", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: invalid setting: web.port (SALESHUB_WEB__PORT): Input should be greater than or equal to 1"
    ]
