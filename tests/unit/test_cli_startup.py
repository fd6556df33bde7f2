"""The command line imports a command's stack only when that command runs (``bench/cli_startup.py`` times it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from saleshub.cli import COMMANDS, app, load_command

HEAVY = ("fastapi", "alembic", "confluent_kafka", "uvicorn", "sqlalchemy", "ddtrace", "splink", "duckdb")


def _imported_after(*args: str) -> set[str]:
    """The heavy packages a fresh interpreter has imported after running ``saleshub ARGS``."""
    script = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from saleshub.cli import app\n"
        f"result = CliRunner().invoke(app, {list(args)!r})\n"
        "assert result.exit_code == 0, result.output\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_help_imports_no_command_stack() -> None:
    assert _imported_after("--help") == set()


def test_a_group_help_imports_only_that_group() -> None:
    assert (
        _imported_after("webhooks", "--help") & {"fastapi", "alembic", "confluent_kafka", "uvicorn"} == set()
    )


def test_status_needs_no_web_server_or_kafka() -> None:
    imported = _imported_after("status", "--help")
    assert imported & {"fastapi", "uvicorn", "confluent_kafka", "ddtrace", "splink"} == set()


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_help_line_of_each_command_is_its_own(name: str) -> None:
    command = load_command(name)
    own = (command.help or "").strip().splitlines()[0]
    assert COMMANDS[name].help == own
    listed = CliRunner().invoke(app, ["--help"], terminal_width=200).output
    assert name in listed


def test_every_command_runs_through_the_lazy_table() -> None:
    result = CliRunner().invoke(app, ["mappings", "--help"])
    assert result.exit_code == 0 and "validate" in result.output
    assert isinstance(app, typer.Typer)


def test_a_mistyped_command_gets_a_suggestion() -> None:
    result = CliRunner().invoke(app, ["stauts"])
    assert result.exit_code == 2 and "Did you mean 'status'?" in result.output
