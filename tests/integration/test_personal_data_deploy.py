"""``saleshub mappings deploy`` refuses mappings that route personal data into a non-personal field,
through the real CLI (in-process Typer) and real PostgreSQL (pgserver); an acknowledged rule deploys."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saleshub.cli import app
from saleshub.mapping.personal import FIX
from tests.conftest import MAPPINGS

pytestmark = pytest.mark.integration


@pytest.fixture
def run(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    monkeypatch.setenv("COLUMNS", "300")
    return CliRunner()


def test_deploy_refuses_a_leak_and_deploys_it_acknowledged(run: CliRunner, tmp_path: Path) -> None:
    leaking = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, leaking)
    erp = leaking / "erp" / "order.yaml"
    text = erp.read_text(encoding="utf-8")
    assert text.endswith('      bill_to_account: {path: "billToCustomer[0].AccountNumber"}\n')
    erp.write_text(
        text + '      ship_to_contact: {path: "shipToCustomer[0].ContactLastName"}\n', encoding="utf-8"
    )
    line = len(text.splitlines()) + 1
    last_name = next(n for n, row in enumerate(text.splitlines(), start=1) if "last_name:" in row)

    refused = run.invoke(app, ["mappings", "deploy", "--dir", str(leaking), "--message", "contact"])
    assert refused.exit_code == 1, refused.output
    assert (
        f"erp/order.yaml:{line} system_metadata.ship_to_contact: reads personal data from "
        f"shipToCustomer[0].ContactLastName (mapped to customer.last_name in erp/order.yaml:{last_name}), "
        f"but is not a personal-data field; {FIX}"
    ) in refused.output
    assert "no mapping revision deployed yet" in run.invoke(app, ["mappings", "history"]).output

    erp.write_text(
        text
        + "      ship_to_contact:\n"
        + '        path: "shipToCustomer[0].ContactLastName"\n'
        + "        personal_data: {allowed: true, reason: the fitter asks for this person on site}\n",
        encoding="utf-8",
    )
    # The new field changes every ERP golden sample's output: none are run here.
    samples = tmp_path / "no-samples"
    samples.mkdir()
    deployed = run.invoke(
        app, ["mappings", "deploy", "--dir", str(leaking), "--samples", str(samples), "--message", "contact"]
    )
    assert deployed.exit_code == 0, deployed.output
    assert "deployed r1" in deployed.output
