"""The reconciliation report as a reader gets it: JSON, CSV, and the HTML page in headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import Engine

from reconciliation.engine import reconcile
from reconciliation.model import ReconciliationReport
from reconciliation.reports import build_report, render_csv, render_html, render_json
from reconciliation.reports.svg import KIND_COLOURS
from reconciliation.sources import FileManifestReader
from tests.integration.test_reconciliation import RULES, WINDOW, engine, seed

pytestmark = pytest.mark.integration

__all__ = ["engine"]  # the fixture, shared with the comparison tests

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@pytest.fixture
def report(engine: Engine, tmp_path: Path) -> ReconciliationReport:
    """Three runs of the seeded data set (for the trend); the report of the last."""
    manifest = seed(engine, tmp_path)
    run_id = None
    for _ in range(3):
        run_id = reconcile(engine, FileManifestReader("pyxis", manifest), WINDOW, RULES)
    assert run_id is not None
    with engine.connect() as conn:
        return build_report(conn, run_id)


def test_json_and_csv_carry_every_finding(report: ReconciliationReport) -> None:
    document = json.loads(render_json(report))
    assert document["run"]["counts"] == report.run.counts
    assert len(document["findings"]) == len(report.findings) == sum(report.run.counts.values())
    assert len(document["trend"]) == 3
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert len(rows) == len(report.findings)
    mismatch = next(r for r in rows if r["external_order_id"] == "PYX-ES-2026-000026")
    assert "status: CONFIRMED → CANCELLED" in mismatch["field_differences"]
    assert {r["kind"] for r in rows} == set(report.run.counts)


class _Recorder(SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *_args: Any) -> None:
        type(self).requests.append(self.path)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server of ``tmp_path``, and the list of paths it was asked for."""
    requests: list[str] = []
    handler = type("Handler", (_Recorder,), {"requests": requests})

    def make(*args: Any) -> SimpleHTTPRequestHandler:
        return handler(*args, directory=str(tmp_path))

    server = ThreadingHTTPServer(("127.0.0.1", 0), make)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary is not None, "Debian's chromium is needed (scripts/test.sh installs it)"
    profile = tmp_path / "profile"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )


def test_html_report_renders_its_charts_offline_in_chromium(
    report: ReconciliationReport, tmp_path: Path, served: tuple[str, list[str]]
) -> None:
    html = render_html(report)
    assert not re.search(r"https?://", html), "the page must not name any outside address"
    assert "default-src 'none'" in html
    (tmp_path / "report.html").write_text(html, encoding="utf-8")
    base, requests = served

    dom = chromium(tmp_path, "--dump-dom", f"{base}/report.html").stdout
    assert dom.count('<svg class="chart"') == 6
    assert len(re.findall(r'<rect class="bar"[^>]*width="[1-9]', dom)) >= 10
    assert "Same version, different content" in dom

    screenshot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1280,2400", f"{base}/report.html")
    assert requests == ["/report.html", "/report.html"], f"the page made other requests: {requests}"
    image = Image.open(screenshot).convert("RGB")
    colours = {rgb for _count, rgb in image.getcolors(maxcolors=1 << 24) or []}
    for kind in ("missing_in_hub", "content_mismatch", "hub_stale"):
        rgb = tuple(int(KIND_COLOURS[kind][i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in colours, f"no bar of {kind} drawn in the screenshot"
