"""``/api/v1/privacy``: erasure (a dry run by default) and export, admin only, behind the real provider."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from saleshub.runtime import HubRuntime
from saleshub.store import queries
from tests.integration.conftest import wait_until
from tests.integration.test_console import (
    CHROMIUM,
    ConsoleServer,
    accessible,
    console_hub,
    id_token,
    login,
    provider,
    send,
)
from tests.support.synthetic import pyxis_event

__all__ = ["console_hub", "provider"]  # the fixtures this module uses

EMAIL = "api.canary@example.com"


def _order(number: int) -> bytes:
    event: dict[str, Any] = json.loads(pyxis_event(number))
    event["order"]["customer"]["email"] = EMAIL
    return json.dumps(event).encode()


def test_privacy_api_erases_after_a_dry_run_and_exports_for_admins_only(
    console_hub: HubRuntime, provider: str
) -> None:
    with ConsoleServer(console_hub) as live:
        admin, steward = (id_token(provider, who) for who in ("priya", "stella"))

        def call(path: str, token: str, body: dict[str, Any]) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"}
            return httpx.post(f"{live.url}/api/v1/privacy/{path}", json=body, headers=headers, timeout=60)

        for number in (71, 72):
            send(live.url, _order(number))

        def stored() -> bool:
            with console_hub.database.engine.connect() as conn:
                found = [
                    queries.find_order(conn, system="pyxis", external_id=f"PX-SYN-0000000{n}")
                    for n in (71, 72)
                ]
            return all(order is not None for order in found)

        wait_until(stored, 120, "both orders are stored")
        refused = call("erasures", steward, {"emails": [EMAIL], "dry_run": False, "reason": "x"})
        assert refused.status_code == 403, refused.text
        assert call("exports", steward, {"emails": [EMAIL]}).status_code == 403

        exported = call("exports", admin, {"emails": [EMAIL], "reason": "DSAR-9"})
        assert exported.status_code == 200, exported.text
        assert len(exported.json()["orders"]) == 2
        assert all(e["raw_body"] and EMAIL in e["raw_body"]["text"] for e in exported.json()["events"])

        dry = call("erasures", admin, {"emails": [EMAIL]}).json()
        assert dry["dry_run"] is True and dry["orders"] == 2 and dry["erasure_id"] is None
        no_reason = call("erasures", admin, {"emails": [EMAIL], "dry_run": False})
        assert no_reason.status_code == 400, no_reason.text
        done = call("erasures", admin, {"emails": [EMAIL], "dry_run": False, "reason": "DSAR-9"}).json()
        assert done["dry_run"] is False and done["erasure_id"] and done["orders"] == 2
        with console_hub.database.engine.connect() as conn:
            order = queries.find_order(conn, system="pyxis", external_id="PX-SYN-000000071")
            assert order is not None and order.erased
        assert call("exports", admin, {"emails": [EMAIL]}).json()["orders"] == []


def test_the_console_privacy_page_finds_then_erases_for_an_admin_only(
    console_hub: HubRuntime, provider: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    with ConsoleServer(console_hub) as live, sync_playwright() as playwright:
        for number in (73, 74):
            send(live.url, _order(number))
        wait_until(lambda: _both_stored(console_hub, 73, 74), 120, "both orders are stored")
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            steward = login(browser, live.url, "stella")
            steward.goto(f"{live.url}/console/privacy")
            assert "for administrators" in steward.locator("main").inner_text()
            assert steward.locator("#erase").count() == 0

            page = login(browser, live.url, "priya")
            page.goto(f"{live.url}/console/privacy")
            accessible(page)
            page.fill("#emails", EMAIL)
            page.locator("#find").click()
            assert "2 orders" in page.locator("#summary").inner_text()
            assert "would be erased" in page.locator("#summary").inner_text()
            with console_hub.database.engine.connect() as conn:
                still = queries.find_order(conn, system="pyxis", external_id="PX-SYN-000000073")
            assert still is not None and not still.erased  # finding changed nothing
            page.screenshot(path=tmp_path / "privacy-found.png", full_page=True)
            accessible(page)
            page.fill("#reason", "DSAR-CONSOLE-1")
            page.locator("#erase").click()
            assert "recorded: 2 orders" in page.locator("#erased").inner_text()
            page.screenshot(path=tmp_path / "privacy-erased.png", full_page=True)
        finally:
            browser.close()
    with console_hub.database.engine.connect() as conn:
        erased = queries.find_order(conn, system="pyxis", external_id="PX-SYN-000000074")
    assert erased is not None and erased.erased


def _both_stored(hub: HubRuntime, *numbers: int) -> bool:
    with hub.database.engine.connect() as conn:
        found = [queries.find_order(conn, system="pyxis", external_id=f"PX-SYN-{n:09d}") for n in numbers]
    return all(order is not None for order in found)
