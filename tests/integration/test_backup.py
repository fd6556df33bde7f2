"""``saleshub db backup|restore`` on the embedded PostgreSQL: a backup taken, later events undone.

Every step is a process of its own on one data directory, as an operator's commands are (the
embedded server stops when the last process using it lets go): one event is recorded, a backup
written, a second event recorded; a restore refuses while another process holds a connection and
changes nothing; once that process is gone the restore brings the database back to one event. With
a configured database URL the commands point the operator to that server's own backups.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saleshub.cli import app
from tests.conftest import MAPPINGS, ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORD = """
import sys
from pathlib import Path
from saleshub.platform.settings import Settings
from saleshub.receive.intake import InboundEvent, admit
from saleshub.runtime import HubRuntime
from tests.support.synthetic import pyxis_event

settings = Settings(database={"data_dir": Path(sys.argv[1])}, mappings_dir=Path(sys.argv[2]))
hub = HubRuntime.open(settings, migrate=True)
try:
    event = InboundEvent("pyxis", "webhook", pyxis_event(int(sys.argv[3])), "application/json")
    hub.recorder.record(event, admit(event, hub.adapters["pyxis"]))
    if sys.argv[4] == "hold":  # keep a connection open until killed, as a running hub does
        with hub.database.engine.connect() as connection:
            print("holding", flush=True)
            sys.stdin.read()
finally:
    hub.close()
"""

COUNT = """
import sys
from pathlib import Path
from sqlalchemy import text
from saleshub.platform.settings import Settings
from saleshub.store.database import open_database

database = open_database(Settings(database={"data_dir": Path(sys.argv[1])}))
try:
    with database.engine.connect() as connection:
        print(connection.execute(text("SELECT count(*) FROM sales_system_integration_events")).scalar_one())
finally:
    database.close()
"""


def python(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def saleshub(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "SALESHUB_DATABASE__URL"}
    env["SALESHUB_DATABASE__DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "saleshub", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def events(data_dir: Path) -> int:
    return int(python(COUNT, str(data_dir)).strip())


def test_a_restore_brings_back_the_database_of_the_backup(tmp_path: Path) -> None:
    data_dir, file = tmp_path / "data", tmp_path / "hub.dump"
    python(RECORD, str(data_dir), str(MAPPINGS), "1", "-")
    backed = saleshub(data_dir, "db", "backup", str(file))
    assert backed.returncode == 0, backed.stderr
    assert file.stat().st_size > 0
    assert file.stat().st_mode & 0o777 == 0o600, "a backup holds the wrapped data keys: owner only"
    python(RECORD, str(data_dir), str(MAPPINGS), "2", "-")
    assert events(data_dir) == 2

    holder = subprocess.Popen(
        [sys.executable, "-c", RECORD, str(data_dir), str(MAPPINGS), "3", "hold"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        refused = saleshub(data_dir, "db", "restore", str(file))
        assert refused.returncode == 1
        assert "other connection" in " ".join(refused.stderr.split()), refused.stderr
        assert events(data_dir) == 3, "a refused restore changes nothing"
    finally:
        holder.communicate("", timeout=60)  # end of input: it lets go and exits
    assert holder.returncode == 0

    restored = saleshub(data_dir, "db", "restore", str(file))
    assert restored.returncode == 0, restored.stderr
    assert events(data_dir) == 1


def test_backup_points_a_configured_database_to_its_own_backups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    result = CliRunner().invoke(app, ["db", "backup", str(tmp_path / "x.dump")])
    assert result.exit_code == 1
    assert "docs/operations.md" in " ".join(result.output.split())
