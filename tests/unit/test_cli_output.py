"""What the command line prints: whole to a pipe, true types, JSON alone, accepted id forms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saleshub.cli import app
from saleshub.mapping.catalog import MappingCatalog
from saleshub.platform.secrets import decode_secret
from saleshub.receive.signatures import SignatureError, verify
from saleshub.stewards.explain import explain
from tests.conftest import MAPPINGS, ROOT
from tests.support.synthetic import pyxis_event, signed_headers

SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtY2xpLXRlc3Rz"


def test_a_table_printed_to_a_pipe_is_never_cut() -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run(
        [sys.executable, "-m", "saleshub", "mappings", "explain", "pyxis", "--mapping", str(MAPPINGS)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "…" not in done.stdout
    rows = [line for line in done.stdout.splitlines() if "external_order_id" in line]
    assert rows, done.stdout[:2000]
    assert "orderNumber" in rows[0] or "order" in rows[0]


def test_explained_types_are_the_declared_ones_never_a_function_name() -> None:
    catalog = MappingCatalog.load(MAPPINGS)
    for compiled in catalog:
        for item in explain(compiled):
            assert "lambda" not in item.type and "combine" not in item.type, (compiled.identity.label, item)
    pyxis = {item.target: item.type for item in explain(catalog.get("pyxis", "order"))}
    assert pyxis["customer.email"] == "email"


@pytest.mark.parametrize("offset", [300.0, 300.9, -300.0, -300.9])
def test_a_timestamp_at_the_tolerance_is_accepted_either_side(offset: float) -> None:
    sent = 1_800_000_000
    headers = signed_headers(SECRET, "edge", b"{}", at=sent)
    assert verify([decode_secret(SECRET)], headers, b"{}", now=sent + offset, tolerance_seconds=300) == "edge"


@pytest.mark.parametrize(
    ("offset", "said"), [(301.0, "too old (301 s"), (-301.0, "too far in the future (301 s")]
)
def test_a_timestamp_past_the_tolerance_is_refused_with_the_true_distance(offset: float, said: str) -> None:
    sent = 1_800_000_000
    headers = signed_headers(SECRET, "edge", b"{}", at=sent)
    with pytest.raises(SignatureError) as refused:
        verify([decode_secret(SECRET)], headers, b"{}", now=sent + offset, tolerance_seconds=300)
    assert said in refused.value.reason and "tolerance 300 s" in refused.value.reason


@pytest.mark.parametrize(
    "args",
    [
        ["orders", "list", "--since", "yesterday"],
        ["events", "list", "--since", "yesterday"],
        ["orders", "list", "--status", "LOST"],
        ["orders", "show", "not-a-uuid"],
        ["report", "ops", "--from", "monday"],
    ],
)
def test_a_bad_option_value_is_a_usage_error_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(
        app, args, env={"SALESHUB_DATABASE__URL": "postgresql://nobody@127.0.0.1:1/none"}
    )
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize(
    "given", ["http://127.0.0.1:{port}", "http://127.0.0.1:{port}/", "http://127.0.0.1:{port}/webhooks/pyxis"]
)
def test_webhooks_send_takes_the_base_or_the_full_url(given: str, tmp_path: Path) -> None:
    paths: list[str] = []

    class Hub(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            paths.append(self.path)
            body = json.dumps({"event_id": "0", "status": "accepted"}).encode()
            self.send_response(202)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        payload = tmp_path / "order.json"
        payload.write_bytes(pyxis_event(1))
        url = given.format(port=server.server_address[1])
        result = CliRunner().invoke(
            app,
            ["webhooks", "send", "pyxis", str(payload), "--url", url],
            env={"SALESHUB_SECRET_WEBHOOK_PYXIS": SECRET, "SALESHUB_DATABASE__DATA_DIR": str(tmp_path)},
        )
        thread.join(10)
    finally:
        server.server_close()
    assert result.exit_code == 0, result.output
    assert paths == ["/webhooks/pyxis"]
