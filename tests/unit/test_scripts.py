"""The shell scripts of the two commands parse, and the local secrets file of ``scripts/serve.sh``
is made as its README paragraph says (one secret per registered system, mode 600, kept)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adapters.registry import AdapterRegistry
from tests.conftest import ROOT

SCRIPTS = [*sorted((ROOT / "scripts").glob("*.sh")), ROOT / ".ci" / "run"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_every_shell_script_parses(script: Path) -> None:
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


def _make(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SALESHUB_DATABASE__DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "local_secrets.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_local_secrets_file_has_one_secret_per_system_and_keeps_them(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    made = _make(data_dir)
    assert made.returncode == 0, made.stderr
    path = data_dir / "secrets.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = yaml.safe_load(path.read_text(encoding="utf-8"))["webhook"]
    assert set(first) == set(AdapterRegistry.default().names())
    assert all(len(values) == 1 and values[0].startswith("whsec_") for values in first.values())
    assert str(path) in made.stdout

    kept = dict(first)
    del kept["pyxis"]  # as if pyxis were a system installed after the file was made
    path.write_text(yaml.safe_dump({"webhook": kept}), encoding="utf-8")
    again = _make(data_dir)
    assert again.returncode == 0, again.stderr
    second = yaml.safe_load(path.read_text(encoding="utf-8"))["webhook"]
    assert {system: second[system] for system in kept} == kept, "existing secrets are kept"
    assert "pyxis" in second and "for pyxis" in again.stdout
    assert _make(data_dir).stdout == "", "nothing to make, nothing said"
