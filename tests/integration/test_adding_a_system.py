"""README's "Adding a source system", run command by command: a plug-in installed with pip is served.

The guide's ```bash blocks run in order in a scratch copy of the repository (``test_docs_examples``'s
sandbox), against a real PostgreSQL, with two substitutions: the plug-in is installed with pip into
a directory of this test (on ``PYTHONPATH``) instead of the shared environment, and
``bash scripts/serve.sh`` starts ``saleshub serve`` in the background. An official Peppol example is
sent, quarantined (no business unit has the seller's participant id), fixed by the steward's
crosswalk edit and deploy, replayed and mapped. Then the live ``/webhooks/peppol`` endpoint gets the
decoding suite's XML attacks and an ``OrderResponse``: each is answered 422, nothing is read or
fetched, and the hub keeps serving.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import ROOT
from tests.integration.conftest import SECRET, free_port, wait_until
from tests.integration.test_docs_examples import _ready, environment, sandbox, steps
from tests.support.synthetic import signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLUGIN = ROOT / "plugins" / "saleshub-peppol"
INSTALL = ".venv/bin/pip install ./plugins/saleshub-peppol"
FILE_SECRET = "TOP-SECRET-PEPPOL-LIVE-5d1e"


def guide() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Adding a source system") :]
    return section[: section.index("\n## ", 5)]


def peppol_status(db_url: str) -> str | None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                text(
                    "SELECT status FROM sales_system_integration_events WHERE source_system = 'peppol' "
                    "AND transport = 'webhook' ORDER BY received_at DESC LIMIT 1"
                )
            ).scalar()
    finally:
        engine.dispose()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback TCP listener: a connection attempt by the hub while it parses would land here."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.3)
    yield server
    server.close()


def test_a_plugin_installed_with_pip_is_served(db_url: str, tmp_path: Path, listener: socket.socket) -> None:
    root = sandbox(tmp_path)
    shutil.copytree(
        PLUGIN, root / "plugins" / "saleshub-peppol", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = environment(db_url, tmp_path, free_port())
    env["SALESHUB_SECRET_WEBHOOK_PEPPOL"] = SECRET
    site = tmp_path / "site"
    outputs: dict[str, str] = {}
    server: subprocess.Popen[bytes] | None = None
    try:
        for kind, _, lines in steps(guide()):
            assert kind == "bash"
            for written in lines:
                line = written
                if written == INSTALL:  # the same pip, into this test's own directory
                    line = f"{INSTALL} --no-deps --target {site}"
                    env["PYTHONPATH"] = str(site)
                if line.startswith("bash scripts/serve.sh"):
                    with (tmp_path / "serve.log").open("wb") as log:
                        server = subprocess.Popen(
                            [".venv/bin/saleshub", "serve"], cwd=root, env=env, stdout=log, stderr=log
                        )
                    url = f"http://127.0.0.1:{env['SALESHUB_WEB__PORT']}/health/ready"
                    wait_until(lambda url=url: _ready(url), 120, "the hub serves")
                    continue
                done = subprocess.run(
                    ["bash", "-c", line],
                    cwd=root,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
                assert "Traceback" not in done.stderr, f"{line}\n{done.stderr}"
                outputs[line] = done.stdout
                if "webhooks send peppol" in line:  # processed by the running hub, not by this test
                    wait_until(
                        lambda: peppol_status(db_url) not in (None, "accepted"), 120, "it is processed"
                    )
                    assert peppol_status(db_url) == "quarantined"
        assert (site / "saleshub_peppol" / "__init__.py").is_file()  # pip installed it there
        shown = outputs[".venv/bin/saleshub orders show peppol:34"]
        assert "B2B" in shown and "LM-ES" in shown, shown
        listed = outputs[".venv/bin/saleshub events list --system peppol --status quarantined"]
        assert "business_units.csv" in listed or "peppol" in listed, listed
        attack_the_live_endpoint(env, tmp_path, listener)
        document = httpx.get(f"http://127.0.0.1:{env['SALESHUB_WEB__PORT']}/openapi.json", timeout=30).json()
        body = document["paths"]["/webhooks/{system}"]["post"]["requestBody"]
        assert "Peppol BIS Ordering 3" in body["description"]
    finally:
        if server is not None:
            server.terminate()
            server.wait(60)
    engine = create_engine(db_url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT name, configuration FROM sales_systems WHERE code = 'peppol'")).one()
        linked = conn.execute(
            text("SELECT count(*) FROM business_unit_sales_systems WHERE system_code = 'peppol'")
        ).scalar_one()
    engine.dispose()
    assert row.name == "Peppol BIS Ordering 3" and row.configuration["transports"] == ["webhook"]
    assert linked == 7  # every business unit of ES, FR, IT and PL


def attack_the_live_endpoint(env: dict[str, str], tmp_path: Path, listener: socket.socket) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(FILE_SECRET, encoding="utf-8")
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    ubl = 'xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"'
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    attacks = {
        "external-entity": f'<!DOCTYPE Order [<!ENTITY x SYSTEM "file://{secret}">]><Order {ubl}>&x;</Order>',
        "external-dtd": f'<!DOCTYPE Order SYSTEM "{url}/evil.dtd"><Order {ubl}/>',
        "parameter-entity": f'<!DOCTYPE Order [<!ENTITY % p SYSTEM "{url}/p.ent"> %p;]><Order {ubl}/>',
        "network-entity": f'<!DOCTYPE Order [<!ENTITY x SYSTEM "{url}/x">]><Order {ubl}>&x;</Order>',
        "billion-laughs": f'<!DOCTYPE Order [<!ENTITY l0 "ha">{laughs}]><Order {ubl}>&l9;</Order>',
        "xinclude": (PLUGIN / "tests" / "official" / "Order_Example.xml")
        .read_text(encoding="utf-8")
        .replace(
            "<cbc:Note>",
            f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file://{secret}" parse="text"/><cbc:Note>',
            1,
        ),
    }
    endpoint = f"http://127.0.0.1:{env['SALESHUB_WEB__PORT']}/webhooks/peppol"
    bodies = {**{name: body.encode() for name, body in attacks.items()}}
    bodies["order-response"] = (PLUGIN / "tests" / "official" / "OrderResponse_Example.xml").read_bytes()
    for name, body in bodies.items():
        headers = signed_headers(SECRET, f"msg_{uuid.uuid4().hex}", body, content_type="application/xml")
        answer = httpx.post(endpoint, content=body, headers=headers, timeout=60)
        assert answer.status_code == 422, (name, answer.status_code, answer.text)
        assert FILE_SECRET not in answer.text, name
        expected = {"order-response": "OrderResponse", "xinclude": "UBL-XSD-"}.get(name, "DOCTYPE")
        assert expected in answer.text, (name, answer.text)
    with pytest.raises(TimeoutError):
        listener.accept()
