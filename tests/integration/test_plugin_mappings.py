"""A plug-in's mapping files: loaded with a directory's, and deployed at start when a revision lacks them.

The Peppol plug-in is installed with pip into a directory of this test, which is put on
``sys.path`` (what an installed distribution is to ``importlib.metadata``): its ``saleshub.mappings``
entry point is then found, and nothing of the shared environment changes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.packaged import packaged_files
from saleshub.mapping.revision import MappingFiles
from saleshub.stewards.deployment import deploy, deploy_packaged, load_deployed
from saleshub.store.database import Database
from tests.conftest import MAPPINGS, ROOT
from tests.integration.conftest import open_hub

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(ROOT / "plugins" / "saleshub-peppol"),
        ],
        check=True,
        capture_output=True,
    )
    return site


@pytest.fixture
def plugin_on_path(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(installed))


def test_without_the_plugin_installed_no_file_is_added() -> None:
    assert packaged_files() == {}
    assert ("peppol", "order") not in {
        (m.identity.system, m.identity.name) for m in MappingCatalog.load(MAPPINGS)
    }


@pytest.mark.usefixtures("plugin_on_path")
def test_a_directory_loads_with_the_plugins_files_it_lacks() -> None:
    assert "peppol/order.yaml" in packaged_files()
    loaded = {(m.identity.system, m.identity.name) for m in MappingCatalog.load(MAPPINGS)}
    assert {("peppol", "order"), ("pyxis", "order")} <= loaded
    alone = {(m.identity.system, m.identity.name) for m in MappingCatalog.load(MAPPINGS, packaged=False)}
    assert ("peppol", "order") not in alone
    assert "peppol/order.yaml" in MappingFiles.read(MAPPINGS).files


def test_start_deploys_the_plugin_files_a_revision_lacks(
    db_url: str, monkeypatch: pytest.MonkeyPatch, installed: Path
) -> None:
    hub = open_hub(db_url)
    try:
        database: Database = hub.database
        files = MappingFiles.read(MAPPINGS)
        first = deploy(database.engine, files, files.catalog(), "without the plug-in")
        assert first is not None
        monkeypatch.syspath_prepend(str(installed))
        second = deploy_packaged(database.engine)
        assert second == first + 1
        found = load_deployed(database.engine)
        assert found is not None and found[1] == second
        assert found[0].get("peppol", "order").identity.system == "peppol"
        assert deploy_packaged(database.engine) is None  # nothing missing any more
    finally:
        hub.close()
