"""``saleshub db backup|restore`` on the embedded PostgreSQL: a backup taken, later events undone.

The commands run as the CLI, on an embedded server of their own data directory: one event is
recorded, a backup written, a second event recorded, then the restore brings the database back to
one event. A restore refuses while another process holds a connection, and with a configured
database URL both commands point the operator to that server's own backups.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from saleshub.cli import app
from saleshub.platform.settings import Settings
from saleshub.receive.intake import InboundEvent, admit
from saleshub.runtime import HubRuntime
from saleshub.synthetic import pyxis_event
from tests.conftest import MAPPINGS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SALESHUB_DATABASE__URL", raising=False)
    monkeypatch.setenv("SALESHUB_DATABASE__DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def record(data_dir: Path, number: int) -> None:
    settings = Settings(database={"data_dir": data_dir}, mappings_dir=MAPPINGS)  # type: ignore[arg-type]
    hub = HubRuntime.open(settings, migrate=True)
    try:
        event = InboundEvent("pyxis", "webhook", pyxis_event(number), "application/json")
        hub.recorder.record(event, admit(event, hub.adapters["pyxis"]))
    finally:
        hub.close()


def events(data_dir: Path) -> int:
    settings = Settings(database={"data_dir": data_dir}, mappings_dir=MAPPINGS)  # type: ignore[arg-type]
    hub = HubRuntime.open(settings)
    try:
        with hub.database.engine.connect() as conn:
            return int(
                conn.execute(text("SELECT count(*) FROM sales_system_integration_events")).scalar_one()
            )
    finally:
        hub.close()


def test_a_restore_brings_back_the_database_of_the_backup(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    record(data_dir, 1)
    file = tmp_path / "hub.dump"
    backed = runner.invoke(app, ["db", "backup", str(file)])
    assert backed.exit_code == 0, backed.output
    assert file.stat().st_size > 0
    record(data_dir, 2)
    assert events(data_dir) == 2

    settings = Settings(database={"data_dir": data_dir}, mappings_dir=MAPPINGS)  # type: ignore[arg-type]
    holder = HubRuntime.open(settings)
    try:
        with holder.database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            refused = runner.invoke(app, ["db", "restore", str(file)])
    finally:
        holder.close()
    assert refused.exit_code == 1
    assert "other connection" in " ".join(refused.output.split())

    restored = runner.invoke(app, ["db", "restore", str(file)])
    assert restored.exit_code == 0, restored.output
    assert events(data_dir) == 1


def test_backup_points_a_configured_database_to_its_own_backups(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    result = CliRunner().invoke(app, ["db", "backup", str(tmp_path / "x.dump")])
    assert result.exit_code == 1
    assert "docs/operations.md" in " ".join(result.output.split())
