"""The README's five-minute tour and the stewards' guide, run command by command, so they cannot rot.

Each ```bash block of the document runs in order, in a scratch copy of the repository's steward
files (``.venv`` linked), against a real PostgreSQL (pgserver); a command must exit 0 unless its
line says ``# exits N``. A ```csv block is appended to the crosswalk the text just before it names.
``bash scripts/serve.sh`` starts ``saleshub serve`` in the background on a free port instead (the
script's own install step is what ``scripts/test.sh`` has already done).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.integration.conftest import SECRETS, free_port, wait_until

pytestmark = pytest.mark.integration

_BLOCK = re.compile(r"```(bash|csv)\n(.*?)```", re.S)
_EXITS = re.compile(r"#\s*exits (\d+)\s*$")


def steps(markdown: str) -> list[tuple[str, str, list[str]]]:
    """``("bash", "", lines)`` and ``("csv", crosswalk path, rows)`` in document order."""
    found: list[tuple[str, str, list[str]]] = []
    for match in _BLOCK.finditer(markdown):
        kind, body = match.group(1), match.group(2)
        lines = [line.strip() for line in body.splitlines() if line.strip()]
        if kind == "csv":
            named = re.findall(r"`(crosswalks/[a-z_]+\.csv)`", markdown[: match.start()])
            found.append(("csv", named[-1], lines))
        else:
            found.append(("bash", "", [line for line in lines if not line.startswith("#")]))
    return found


def sandbox(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / ".venv").symlink_to(ROOT / ".venv")
    shutil.copytree(ROOT / "mappings", root / "mappings")
    shutil.copytree(ROOT / "contracts", root / "contracts")
    shutil.copytree(ROOT / "docs", root / "docs")
    return root


def environment(db_url: str, tmp_path: Path, port: int) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SALESHUB_")},
        **SECRETS,
        "SALESHUB_DATABASE__URL": db_url,
        "SALESHUB_DATABASE__DATA_DIR": str(tmp_path / "data"),
        "SALESHUB_WEB__PORT": str(port),
        "SALESHUB_LOG_LEVEL": "WARNING",
        "COLUMNS": "200",
    }


def run_document(markdown: str, root: Path, env: dict[str, str], tmp_path: Path) -> list[str]:
    """Run every step; the commands run, in order."""
    ran: list[str] = []
    server: subprocess.Popen[bytes] | None = None
    try:
        for kind, target, lines in steps(markdown):
            if kind == "csv":
                with (root / "mappings" / target).open("a", encoding="utf-8") as handle:
                    handle.write("\n".join(lines) + "\n")
                continue
            for line in lines:
                if line.startswith("bash scripts/serve.sh"):
                    with (tmp_path / "serve.log").open("wb") as log:
                        server = subprocess.Popen(
                            [".venv/bin/saleshub", "serve"], cwd=root, env=env, stdout=log, stderr=log
                        )
                    url = f"http://127.0.0.1:{env['SALESHUB_WEB__PORT']}/health/ready"
                    wait_until(lambda url=url: _ready(url), 60, "the hub serves")
                    ran.append(line)
                    continue
                if line.startswith("bash scripts/test.sh"):
                    continue
                expected = int(m.group(1)) if (m := _EXITS.search(line)) else 0
                done = subprocess.run(
                    ["bash", "-c", line],
                    cwd=root,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
                assert done.returncode == expected, f"{line}\n{done.stdout}\n{done.stderr}"
                assert "Traceback" not in done.stderr, f"{line}\n{done.stderr}"
                ran.append(line)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
    return ran


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_readme_tour_runs(db_url: str, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = readme[readme.index("## A five-minute tour") :]
    tour = tour[: tour.index("\n## ", 5)]
    root = sandbox(tmp_path)
    ran = run_document(tour, root, environment(db_url, tmp_path, free_port()), tmp_path)
    assert any("mappings deploy" in line for line in ran) and any("webhooks send" in line for line in ran)
    env = environment(db_url, tmp_path, free_port())
    shown = subprocess.run(
        [".venv/bin/saleshub", "orders", "show", "pyxis:PX-ES-2026-000777"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "IN_STORE" in shown.stdout and "/r2" in shown.stdout, shown.stdout


def test_the_stewards_guide_runs_and_ends_with_both_checks_passing(db_url: str, tmp_path: Path) -> None:
    root = sandbox(tmp_path)
    env = environment(db_url, tmp_path, free_port())
    # The hub has been running with the shipped mappings: they are revision r1.
    subprocess.run(
        [".venv/bin/saleshub", "mappings", "deploy"], cwd=root, env=env, check=True, capture_output=True
    )
    guide = (ROOT / "mappings" / "README.md").read_text(encoding="utf-8")
    ran = run_document(guide, root, env, tmp_path)
    assert any(line.endswith("mappings diff r1 r2") for line in ran)
    for check in (["mappings", "validate"], ["mappings", "test"]):
        subprocess.run([".venv/bin/saleshub", *check], cwd=root, env=env, check=True, capture_output=True)
    preview = subprocess.run(
        [".venv/bin/saleshub", "mappings", "preview", "pyxis", "docs/examples/pyxis_kiosk_order.json"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"sales_channel": "IN_STORE"' in preview.stdout and "/r2" in preview.stdout
