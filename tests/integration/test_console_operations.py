"""The operator API's lineage, pollers, draft golden samples and order pages, with bearer JWTs from a
real OIDC provider (oidc-provider-mock) over a live hub polling a loopback source API.

An order's lineage is the JSON of ``saleshub orders explain --json``, masked unless a steward asks
with a reason (audited); an operator runs a poller now and backfills a window in the background,
a viewer may not; a steward runs the golden samples through a draft; orders page back by key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from reconciliation.engine import reconcile
from reconciliation.model import Window
from reconciliation.rules import load_rules
from saleshub.actions.mappings import start_draft
from saleshub.actions.reconciliation_wiring import api_reader
from saleshub.cli import app
from saleshub.console import pages_orders
from saleshub.console.security import SANDBOXED_DOCUMENT_POLICY
from saleshub.mapping.revision import MappingFiles
from saleshub.platform.secrets import EnvSecretStore
from saleshub.runtime import HubRuntime
from saleshub.stewards.deployment import deploy, load_deployed
from saleshub.store.audit import Actor
from tests.conftest import MAPPINGS
from tests.integration.conftest import SECRETS, open_hub, wait_until
from tests.integration.test_console import (
    CHROMIUM,
    CLIENT_ID,
    ROLES,
    ConsoleServer,
    accessible,
    id_token,
    junk_channel,
    login,
    provider,
    quarantined_event,
    send,
)
from tests.integration.test_polling import FAST, SOURCE_SECRETS
from tests.support.source_server import SourceServer
from tests.support.synthetic import pyxis_event

pytestmark = pytest.mark.integration

__all__ = ["provider"]  # the fixture, shared with the browser tests

ORDER = "pyxis:PX-SYN-000000061"


@pytest.fixture
def source() -> Iterator[SourceServer]:
    with SourceServer() as server:
        yield server


@pytest.fixture
def polling_console_hub(db_url: str, provider: str, source: SourceServer) -> Iterator[HubRuntime]:
    """A hub with the console on, the ERP polled from ``source``, and the mappings deployed (r1)."""
    runtime = open_hub(
        db_url,
        console={"issuer": provider, "client_id": CLIENT_ID, "roles": ROLES, "insecure_cookies": True},
        pollers={"systems": {"erp": {"base_url": source.url, **FAST}}},
    )
    runtime.secrets = EnvSecretStore(
        {**SECRETS, **SOURCE_SECRETS, "SALESHUB_SECRET_CONSOLE_CLIENT_SECRET": "test-client-secret"}
    )
    files = MappingFiles.read(MAPPINGS)
    assert deploy(runtime.database.engine, files, files.catalog(), "the mappings as shipped") == 1
    deployed = load_deployed(runtime.database.engine)
    assert deployed is not None
    runtime.mappings.install(*deployed)
    yield runtime
    runtime.close()


class Api:
    """Calls of ``/api/v1`` with one person's token."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=120, **kwargs)


def stored(hub: HubRuntime, sql: str) -> Any:
    with hub.database.engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def lineage_checks(hub: HubRuntime, steward: Api, viewer: Api, operator: Api, db_url: str) -> None:
    """The lineage JSON equals the command's; personal values only for a steward with a reason."""
    answer = operator("GET", f"/orders/{ORDER}/lineage")
    assert answer.status_code == 200, answer.text
    found = answer.json()
    runner = CliRunner()
    command = runner.invoke(
        app, ["orders", "explain", ORDER, "--json"], env={"SALESHUB_DATABASE__URL": db_url}
    )
    assert command.exit_code == 0, command.output
    assert found == json.loads(command.output)
    assert found["reproducible"] is True and found["revision"] == 1
    fields = {f["field"]: f for f in found["fields"]}
    channel = fields["sales_channel"]
    assert channel["rule"].startswith("pyxis/order.yaml:")
    assert any(s.get("crosswalk") == "crosswalks/channels.csv" and s.get("row") for s in channel["steps"])
    assert fields["customer.last_name"]["masked"] is True

    only = viewer("GET", f"/orders/{ORDER}/lineage", params={"field": "sales_channel", "version": 1})
    assert [f["field"] for f in only.json()["fields"]] == ["sales_channel"]
    assert operator("GET", f"/orders/{ORDER}/lineage", params={"version": 9}).status_code == 404
    assert viewer("GET", "/orders/pyxis:NOPE/lineage").status_code == 404

    why = {"unmask": "true", "reason": "customer asked what we hold"}
    assert viewer("GET", f"/orders/{ORDER}/lineage", params=why).status_code == 403
    assert operator("GET", f"/orders/{ORDER}/lineage", params=why).status_code == 403
    no_reason = steward("GET", f"/orders/{ORDER}/lineage", params={"unmask": "true"})
    assert no_reason.status_code == 400, no_reason.text
    shown = steward("GET", f"/orders/{ORDER}/lineage", params=why)
    assert shown.status_code == 200, shown.text
    last_name = {f["field"]: f for f in shown.json()["fields"]}["customer.last_name"]
    assert last_name["masked"] is False and last_name["value"] != "***"
    # A quarantined event's lineage ends at the field that failed, and says why.
    send(operator.url, junk_channel(62))
    event_id = quarantined_event(hub, "PX-SYN-000000062")
    traced = viewer("GET", f"/events/{event_id}/lineage")
    assert traced.status_code == 200, traced.text
    stopped = traced.json()
    assert stopped["event_status"] == "quarantined" and stopped["reproducible"] is True
    assert stopped["fields"][-1]["field"] == "sales_channel" and stopped["fields"][-1]["errors"]
    assert [e["target"] for e in stopped["errors"]] == ["sales_channel"]
    assert viewer("GET", f"/events/{uuid.uuid4()}/lineage").status_code == 404
    audit = steward("GET", "/audit").json()
    assert [(a["action"], a["name"], a["reason"]) for a in audit if a["action"].startswith("orders.")] == [
        ("orders.lineage.unmask", "Stella Steward", "customer asked what we hold")
    ]


def poller_checks(operator: Api, viewer: Api) -> None:
    """Backfill and run now start in the background, for operators only, and are audited."""

    def finished(stream: str) -> bool:
        runs = operator("GET", "/pollers/erp").json()["runs"]
        return bool(runs) and runs[0]["stream"] == stream and runs[0]["outcome"] == "completed"

    window = {"since": "2026-10-01T00:00:00Z", "until": "2026-10-02T00:00:00Z"}
    assert viewer("POST", "/pollers/erp/backfill", json=window).status_code == 403
    assert operator("POST", "/pollers/nowhere/backfill", json=window).status_code == 404
    assert viewer("GET", "/pollers/nowhere").status_code == 404
    backwards = operator("POST", "/pollers/erp/backfill", json={**window, "since": "2026-10-03T00:00:00Z"})
    assert backwards.status_code == 400, backwards.text
    started = operator("POST", "/pollers/erp/backfill", json=window)
    assert started.status_code == 202, started.text
    wait_until(lambda: finished("backfill"), 120, "the backfill completes")
    view = operator("GET", "/pollers/erp").json()
    assert view["backfill"]["finished_at"] is not None and view["runs"][0]["recorded"] == 7
    assert view["cursor"] is None and view["lag_seconds"] is None  # the incremental feed is untouched

    assert viewer("POST", "/pollers/erp/run").status_code == 403
    started = operator("POST", "/pollers/erp/run", json={"force": False})
    assert started.status_code == 202, started.text
    wait_until(lambda: finished("incremental"), 120, "the poller's run now completes")
    view = operator("GET", "/pollers/erp").json()
    assert view["runs"][0]["recorded"] == 5 and view["lag_seconds"] is not None
    actions = [(a["action"], a["name"]) for a in operator("GET", "/audit").json()]
    assert ("pollers.run", "Otto Operator") in actions and ("pollers.backfill", "Otto Operator") in actions


def draft_checks(steward: Api, operator: Api, viewer: Api) -> None:
    """A revision's files, a draft edited through the API, and its golden samples."""
    # The golden samples through a draft: what a deploy would check, for stewards.
    draft_id = steward("POST", "/mappings/drafts").json()["draft_id"]
    assert operator("POST", f"/mappings/drafts/{draft_id}/tests").status_code == 403
    tests = steward("POST", f"/mappings/drafts/{draft_id}/tests")
    assert tests.status_code == 200, tests.text
    result = tests.json()
    assert result["failed"] == 0 and result["passed"] == len(result["cases"]) > 3
    # Pyxis's store and web codes swapped: the in-store samples now come out ONLINE.
    current = viewer("GET", "/mappings/revisions/current").json()
    assert current["revision"] == 1 and viewer("GET", "/mappings/revisions/r1").json() == current
    assert viewer("GET", "/mappings/revisions/9").status_code == 404
    channels = current["files"]["crosswalks/channels.csv"]
    swapped = channels.replace("IN_STORE,STORE,", "IN_STORE,WEB,").replace("ONLINE,WEB,", "ONLINE,STORE,")
    path = f"/mappings/drafts/{draft_id}/files/crosswalks/channels.csv"
    assert operator("PUT", path, json={"text": swapped}).status_code == 403
    edited = steward("PUT", path, json={"text": swapped})
    assert edited.status_code == 200, edited.text
    assert (
        steward("GET", f"/mappings/drafts/{draft_id}").json()["files"]["crosswalks/channels.csv"] == swapped
    )
    broken = steward("POST", f"/mappings/drafts/{draft_id}/tests").json()
    failing = [c for c in broken["cases"] if not c["passed"]]
    assert broken["failed"] == len(failing) > 0
    assert {c["system"] for c in failing} == {"pyxis"}
    assert all(d["field"] == "order.sales_channel" for c in failing for d in c["differences"])
    twice = {"crosswalk": "crosswalks/channels.csv", "row": "B2B,STORE,,,a second STORE"}
    assert steward("POST", f"/mappings/drafts/{draft_id}/crosswalk-rows", json=twice).status_code == 200
    unloadable = steward("POST", f"/mappings/drafts/{draft_id}/tests")
    assert unloadable.status_code == 422 and "appears twice" in unloadable.text


def test_lineage_pollers_goldens_and_order_pages_in_the_api(
    polling_console_hub: HubRuntime, provider: str, source: SourceServer, db_url: str
) -> None:
    hub = polling_console_hub
    source.erp.add(range(1, 6))  # changed now: the incremental feed
    base = datetime(2026, 10, 1, tzinfo=UTC)
    for number in range(101, 108):  # changed on 1 October: only a backfill reads them
        at = base + timedelta(hours=number - 100)
        source.erp.add([number], updated_at=at.isoformat(timespec="milliseconds"))
    with ConsoleServer(hub) as live:
        steward, operator, viewer = (
            Api(live.url, id_token(provider, who)) for who in ("stella", "otto", "vera")
        )
        send(live.url, pyxis_event(61))
        wait_until(
            lambda: (
                stored(hub, f"SELECT count(*) FROM service_orders WHERE external_order_id = '{ORDER[6:]}'")
                == 1
            ),
            60,
            "the Pyxis order is stored",
        )
        lineage_checks(hub, steward, viewer, operator, db_url)
        poller_checks(operator, viewer)
        wait_until(lambda: stored(hub, "SELECT count(*) FROM service_orders") == 13, 120, "13 orders")

        # Keyset pages of orders: three pages of five give the whole list once, newest first.
        everything = viewer("GET", "/orders", params={"limit": 100}).json()
        assert len(everything) == 13
        pages: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 5}
        while True:
            page = viewer("GET", "/orders", params=params).json()
            if not page:
                break
            pages += page
            params = {"limit": 5, "before": page[-1]["updated_at"], "before_id": page[-1]["hub_order_id"]}
        assert [o["hub_order_id"] for o in pages] == [o["hub_order_id"] for o in everything]
        keys = [(o["updated_at"], o["hub_order_id"]) for o in everything]
        assert keys == sorted(keys, reverse=True)
        half = viewer("GET", "/orders", params={"before": everything[0]["updated_at"]})
        assert half.status_code == 400, half.text

        draft_checks(steward, operator, viewer)


def wait_for_text(page: Any, selector: str, wanted: str, what: str) -> None:
    """Reload ``page`` until ``selector`` shows ``wanted`` (a background run finishing)."""

    def shown() -> bool:
        page.reload()
        return wanted in page.locator(selector).inner_text()

    wait_until(shown, 120, what)


def test_console_pages_lineage_pollers_goldens_diff_and_rollback(  # noqa: PLR0915 (one story)
    polling_console_hub: HubRuntime,
    provider: str,
    source: SourceServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import sync_playwright

    hub = polling_console_hub
    monkeypatch.setattr(pages_orders, "ORDERS_PER_PAGE", 2)  # three orders: two pages
    source.erp.add(range(1, 4))
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with ConsoleServer(hub) as live, sync_playwright() as playwright:
        for number in (71, 72, 73):
            send(live.url, pyxis_event(number))
        wait_until(lambda: stored(hub, "SELECT count(*) FROM service_orders") == 3, 60, "3 orders")
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            stella = login(browser, live.url, "stella")
            minutes = " ".join(stella.locator("#events-per-minute").inner_text().split())
            assert "pyxis 3 0.1" in minutes, minutes
            assert stella.locator("#last-reconciliation").inner_text() == "none yet"
            assert "erp never caught up" in " ".join(stella.locator("#poller-lag").inner_text().split())
            accessible(stella)
            stella.screenshot(path=shots / "dashboard.png", full_page=True)

            # Orders page back by key; an order shows its lineage beside it, masked until asked.
            stella.goto(f"{live.url}/console/orders")
            first = stella.locator("tbody tr").count()
            stella.locator("#older").click()
            assert first == 2 and stella.locator("tbody tr").count() == 1
            stella.locator("tbody a").first.click()
            channel = stella.locator("#lineage-fields tr[data-field='sales_channel']").inner_text()
            assert "crosswalks/channels.csv row 2" in channel and "pyxis/order.yaml:" in channel, channel
            last_name = stella.locator("#lineage-fields tr[data-field='customer.last_name'] td").nth(1)
            assert last_name.inner_text() == "***"
            accessible(stella)
            stella.screenshot(path=shots / "order-lineage.png", full_page=True)
            order_url = stella.url
            stella.goto(f"{order_url}?version=9")  # the order still shows; the lineage says why not
            assert "no version 9" in stella.locator("#lineage-problem").inner_text()
            assert stella.locator("#order-content").count() == 1
            stella.goto(order_url)
            stella.fill("#unmask-reason", "the customer asked what we hold")
            stella.locator("#unmask").click()
            stella.locator("#personal-shown").wait_for()
            assert last_name.inner_text() not in ("***", "")

            # A draft's golden samples from its page, then a deploy, the side-by-side diff, a rollback.
            draft_id = start_draft(hub.database.engine, Actor("stella", "Stella Steward"), MAPPINGS)
            stella.goto(f"{live.url}/console/drafts/{draft_id}")
            stella.locator("#run-goldens").click()
            summary = stella.locator("#goldens-summary").inner_text()
            assert summary.endswith(" passed, 0 failed") and not summary.startswith("0 "), summary
            accessible(stella)
            stella.screenshot(path=shots / "draft-goldens.png", full_page=True)
            stella.get_by_role("link", name="crosswalks/channels.csv").click()
            text_area = stella.locator("#file-text")
            accessible(stella)
            text_area.fill(text_area.input_value().replace(",Web shop", ",Web shop and tablet app"))
            stella.locator("#save-file").click()
            assert "Web shop and tablet app" in stella.locator("#changes").inner_text()
            stella.select_option("#crosswalk", "crosswalks/channels.csv")
            stella.fill("#row", "PHONE,NOWHERE,,,Orders from nowhere are phone sales")
            stella.locator("#add-row").click()
            stella.fill("#message", "NOWHERE orders are phone sales")
            stella.locator("#deploy").click()
            stella.wait_for_url("**/console/mappings?deployed=2")
            stella.locator("a.diff").first.click()
            assert "crosswalks/channels.csv" in stella.locator("#changes").inner_text()
            assert "NOWHERE" in stella.locator("table.sides tr.insert").inner_text()
            assert "tablet app" in stella.locator("table.sides tr.replace").inner_text()
            accessible(stella)
            stella.screenshot(path=shots / "diff.png", full_page=True)
            stella.goto(f"{live.url}/console/mappings")
            stella.fill("#rollback-message-1", "the NOWHERE row is not agreed yet")
            stella.locator("#rollback-1").click()
            stella.wait_for_url("**/console/mappings?deployed=3")
            newest = stella.locator("#history tbody tr").first.inner_text()
            assert (
                "r3" in newest
                and "Stella Steward" in newest
                and "the NOWHERE row is not agreed yet" in newest
            )

            # Pollers: an operator runs now and backfills, the runs go on in the background.
            otto = login(browser, live.url, "otto")
            otto.goto(f"{live.url}/console/mappings")
            assert otto.locator("#rollback-1").count() == 0
            otto.goto(f"{live.url}/console/pollers")
            otto.locator("#run-erp").click()
            otto.locator("#started").wait_for()
            wait_for_text(otto, "tr[data-system='erp'] .last-run", "completed", "the run now completes")
            assert "3 new" in otto.locator("tr[data-system='erp'] .last-run").inner_text()
            otto.fill("#since-erp", "2026-10-01")
            otto.fill("#until-erp", "2026-10-02")
            with otto.expect_navigation():  # the same address as now: wait for the new page
                otto.locator("#backfill-erp").click()
            wait_for_text(otto, "tr[data-system='erp'] .last-run", "backfill", "the backfill starts")
            wait_for_text(otto, "tr[data-system='erp'] .last-run", "completed", "the backfill completes")
            accessible(otto)
            otto.screenshot(path=shots / "pollers-run.png", full_page=True)

            # A reconciliation run's self-contained report opens from the runs page, sandboxed.
            window = Window(start=datetime.now(UTC) - timedelta(days=1), end=datetime.now(UTC))
            rules = load_rules(MAPPINGS).for_system("erp")
            run_id = reconcile(hub.database.engine, api_reader(hub, "erp"), window, rules)
            otto.goto(f"{live.url}/console/reconciliation")
            link = otto.locator(f"a.report[href$='/{run_id}']")
            with otto.expect_navigation() as opened:
                link.click()
            report = opened.value
            assert report is not None and report.status == 200
            assert report.headers["content-security-policy"] == SANDBOXED_DOCUMENT_POLICY
            assert "erp" in otto.content()
            otto.screenshot(path=shots / "reconciliation-report.png", full_page=True)
            vera = login(browser, live.url, "vera")
            vera.goto(f"{live.url}/console/pollers")
            assert vera.locator("#run-erp").count() == 0
            forged = vera.request.post(f"{live.url}/console/pollers/erp/run", form={"csrf": "x"})
            assert forged.status == 403
        finally:
            browser.close()
    with hub.database.engine.connect() as conn:
        actions = conn.execute(text("SELECT action, name FROM operator_actions ORDER BY action_id")).all()
    assert ("orders.lineage.unmask", "Stella Steward") in actions
    assert ("mappings.rollback", "Stella Steward") in actions
    assert ("pollers.run", "Otto Operator") in actions and ("pollers.backfill", "Otto Operator") in actions
