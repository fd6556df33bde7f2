"""The image's layout, built into a directory and run: what ``deploy/Containerfile`` does, without a runtime.

No container runtime runs here, so this test runs the same steps: ``deploy/install.sh`` (the
Containerfile's build stage runs exactly this script) into ``<dir>/opt/saleshub`` and
``<dir>/srv/saleshub``, makes that tree read-only, and starts ``saleshub serve`` from it in the
image's working directory with the image's environment, as an unprivileged user (``nobody`` when
the test runs as root), with only the declared writable paths (the data directory and a temporary
directory) writable. The hub must become ready on its embedded PostgreSQL, take a signed webhook,
stop with exit 0 on SIGTERM, and have written nothing into the tree.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.integration.conftest import SECRET, free_port, wait_until
from tests.support.synthetic import pyxis_event, signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOBODY = 65534


def snapshot(tree: Path) -> dict[str, float]:
    return {str(path): path.stat().st_mtime for path in tree.rglob("*")}


@pytest.fixture
def layout() -> Iterator[Path]:
    # Not under pytest's tmp_path: its parents are private to the user running the tests.
    base = Path(tempfile.mkdtemp(prefix="saleshub-layout-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_image_layout_serves_as_an_unprivileged_user_from_a_read_only_tree(layout: Path) -> None:
    prefix, app = layout / "opt" / "saleshub", layout / "srv" / "saleshub"
    built = subprocess.run(
        ["sh", "deploy/install.sh", str(prefix), str(app)],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert (prefix / "bin" / "saleshub").is_file()
    assert {path.name for path in app.iterdir()} == {"mappings", "contracts"}
    installed = {path.name.split("-")[0].lower().replace("_", "-") for path in prefix.rglob("*.dist-info")}
    locked = {
        line.split("==")[0]
        for line in (ROOT / "deploy" / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert installed - {"pip", "setuptools"} == locked | {"saleshub"}, "the lock and the hub, nothing else"

    data, tmp = layout / "var-lib-saleshub", layout / "tmp"
    for writable in (data, tmp):
        writable.mkdir()
    as_root = os.geteuid() == 0
    if as_root:
        for writable in (data, tmp):
            os.chown(writable, NOBODY, NOBODY)
    for path in [prefix, app, *prefix.rglob("*"), *app.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)
    before = snapshot(layout / "opt") | snapshot(layout / "srv")

    port = free_port()
    env = {
        "PATH": f"{prefix / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp),
        "TMPDIR": str(tmp),
        "PYTHONDONTWRITEBYTECODE": "1",
        "SALESHUB_DATABASE__DATA_DIR": str(data),
        "SALESHUB_WEB__PORT": str(port),
        "SALESHUB_SECRET_WEBHOOK_PYXIS": SECRET,
        "SALESHUB_LOG_LEVEL": "WARNING",
    }
    command = [str(prefix / "bin" / "saleshub"), "serve", "--receive-only"]
    if as_root:
        command = ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups", *command]
    log = layout / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(command, cwd=app, env=env, stdout=sink, stderr=sink)
    try:

        def ready() -> bool:
            if server.poll() is not None:
                raise AssertionError(f"serve exited with {server.returncode}: {log.read_text()[-3000:]}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, 180, "serve from the layout is ready")
        body = pyxis_event(1)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/pyxis",
            content=body,
            headers=signed_headers(SECRET, "msg_layout_1", body),
            timeout=30,
        )
        assert answer.status_code == 202, answer.text
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)
    assert (data / "postgres").is_dir(), "the embedded database lives in the declared data path"
    assert snapshot(layout / "opt") | snapshot(layout / "srv") == before, "nothing written into the tree"
