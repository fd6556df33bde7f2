"""The operator API and console against a real OIDC provider (oidc-provider-mock: discovery, JWKS,
the code flow) and a real browser (Playwright driving Debian's chromium), over a live hub.

A steward logs in, opens a quarantined order's event, adds the missing crosswalk row in a draft, sees
the preview and the impact, deploys with a message and replays: the order is processed and the
deploy is attributed to them. An operator gets 403 on a deploy and sees no deploy control; a viewer
sees personal data masked; a forged cross-site POST and wrongly signed or tampered JWTs are refused.
Screenshots of the main pages are saved under the test's tmp dir.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import text

from saleshub.console.app import create_hub_app
from saleshub.platform.secrets import EnvSecretStore
from saleshub.runtime import HubRuntime
from saleshub.services import Services
from tests.integration.conftest import SECRET, SECRETS, free_port, open_hub, wait_until
from tests.support.synthetic import pyxis_event, signed_headers

with warnings.catch_warnings():  # the provider imports authlib.jose, which warns of its deprecation
    warnings.simplefilter("ignore")
    import oidc_provider_mock
    from oidc_provider_mock import User

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")  # Debian's (scripts/test.sh installs it); Playwright downloads none
CLIENT_ID = "saleshub-console"
ROLES = {
    "hub-viewers": "viewer",
    "hub-operators": "operator",
    "hub-stewards": "steward",
    "hub-admins": "admin",
}
USERS = [
    User(sub="stella", claims={"name": "Stella Steward", "groups": ["hub-stewards"]}),
    User(sub="otto", claims={"name": "Otto Operator", "groups": ["hub-operators"]}),
    User(sub="vera", claims={"name": "Vera Viewer", "groups": ["hub-viewers"]}),
    User(sub="priya", claims={"name": "Priya Privacy", "groups": ["hub-admins"]}),
]


@pytest.fixture
def provider() -> Iterator[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with oidc_provider_mock.run_server_in_thread(user_claims=USERS) as server:
            yield f"http://localhost:{server.server_port}"


class ConsoleServer:
    """``saleshub serve``'s application (webhooks, API, console) on a loopback port, with a processor."""

    def __init__(self, hub: HubRuntime) -> None:
        self.hub, self.port = hub, free_port()
        config = uvicorn.Config(create_hub_app(hub), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.services: Services | None = None

    def __enter__(self) -> ConsoleServer:
        self.services = Services.start(self.hub, processors=1)
        self.thread.start()
        wait_until(lambda: self.server.started, 30, "uvicorn serves")
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if self.services is not None:
            self.services.stop()


@pytest.fixture
def console_hub(db_url: str, provider: str) -> Iterator[HubRuntime]:
    runtime = open_hub(
        db_url,
        console={"issuer": provider, "client_id": CLIENT_ID, "roles": ROLES, "insecure_cookies": True},
    )
    # The client secret comes from the secret store, as in production.
    runtime.secrets = EnvSecretStore(
        {**SECRETS, "SALESHUB_SECRET_CONSOLE_CLIENT_SECRET": "test-client-secret"}
    )
    yield runtime
    runtime.close()


def id_token(provider: str, sub: str) -> str:
    """An ID token for ``sub``, through the provider's authorization-code flow (no browser)."""
    redirect = "http://127.0.0.1/callback"
    query = {
        "client_id": CLIENT_ID,
        "redirect_uri": redirect,
        "response_type": "code",
        "scope": "openid profile",
        "state": "s",
    }
    with httpx.Client(base_url=provider) as client:
        answer = client.post("/oauth2/authorize", params=query, data={"sub": sub})
        assert answer.status_code == 302, answer.text
        code = urllib.parse.parse_qs(urllib.parse.urlparse(answer.headers["location"]).query)["code"][0]
        token = client.post(
            "/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect},
            auth=(CLIENT_ID, "any"),
        )
        assert token.status_code == 200, token.text
        value: str = token.json()["id_token"]
        return value


def send(url: str, body: bytes) -> None:
    response = httpx.post(
        f"{url}/webhooks/pyxis", content=body, headers=signed_headers(SECRET, f"w-{uuid.uuid4()}", body)
    )
    assert response.status_code == 202, response.text


def quarantined_event(hub: HubRuntime, order_key: str) -> str:
    def found() -> bool:
        with hub.database.engine.connect() as conn:
            return bool(
                conn.execute(
                    text(
                        "SELECT 1 FROM sales_system_integration_events WHERE order_key = :k AND status = 'quarantined'"
                    ),
                    {"k": order_key},
                ).first()
            )

    wait_until(found, 60, f"{order_key} is quarantined")
    with hub.database.engine.connect() as conn:
        return str(
            conn.execute(
                text(
                    "SELECT event_id FROM sales_system_integration_events WHERE order_key = :k AND status = 'quarantined'"
                ),
                {"k": order_key},
            ).scalar_one()
        )


def junk_channel(n: int, channel: bytes = b"NOWHERE") -> bytes:
    return pyxis_event(n).replace(b'"channel": "STORE"', b'"channel": "' + channel + b'"')


def test_operator_api_document_matches_the_app(console_hub: HubRuntime) -> None:
    committed = json.loads(
        (Path(__file__).resolve().parents[2] / "contracts" / "operator-api.json").read_text()
    )
    assert create_hub_app(console_hub).openapi() == committed, (
        "run `saleshub api openapi --operator-api --output contracts/operator-api.json`"
    )


def test_console_and_api_are_off_without_a_provider(hub: HubRuntime) -> None:
    with ConsoleServer(hub) as live:
        assert httpx.get(f"{live.url}/api/v1/status").status_code == 404
        assert httpx.get(f"{live.url}/console/").status_code == 404
        send(live.url, pyxis_event(31))  # the webhooks work


def _forged(token: str, key: RSAKey, **claims: Any) -> str:
    header = json.loads(base64.urlsafe_b64decode(token.split(".", maxsplit=1)[0] + "=="))
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    signed_header = {"alg": "RS256", **({"kid": header["kid"]} if header.get("kid") else {})}
    return jwt.encode(signed_header, {**payload, **claims}, key)


def test_api_roles_masking_and_refused_tokens(console_hub: HubRuntime, provider: str) -> None:
    with ConsoleServer(console_hub) as live:
        send(live.url, junk_channel(41))
        event_id = quarantined_event(console_hub, "PX-SYN-000000041")
        steward, operator, viewer = (id_token(provider, s) for s in ("stella", "otto", "vera"))

        def call(method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.request(method, f"{live.url}/api/v1{path}", headers=headers, timeout=60, **kwargs)

        assert call("GET", "/status", None).status_code == 401
        answer = call("GET", "/status", steward)
        assert answer.status_code == 200 and answer.json()["open_problems"] == 1
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "unsafe" not in policy
        assert (
            httpx.get(f"{live.url}/console/", follow_redirects=False).headers["location"] == "/console/login"
        )
        stranger = RSAKey.generate_key(2048)
        assert call("GET", "/status", _forged(steward, stranger)).status_code == 401
        tampered = steward.split(".")
        expired = json.loads(base64.urlsafe_b64decode(tampered[1] + "=="))
        expired["exp"] = int(time.time()) - 3600
        tampered[1] = base64.urlsafe_b64encode(json.dumps(expired).encode()).decode().rstrip("=")
        assert call("GET", "/status", ".".join(tampered)).status_code == 401
        assert (
            call("GET", "/status", _forged(steward, stranger, exp=int(time.time()) - 3600)).status_code == 401
        )

        listed = call("GET", "/events?open=true", viewer).json()
        assert [e["event_id"] for e in listed] == [event_id]
        seen = call("GET", f"/events/{event_id}", viewer).json()
        raw = call("GET", f"/events/{event_id}", operator).json()
        assert "***" in seen["body"] and "***" not in raw["body"]

        draft = call("POST", "/mappings/drafts", steward)
        assert draft.status_code == 201, draft.text
        draft_id = draft.json()["draft_id"]
        refused = call("POST", f"/mappings/drafts/{draft_id}/deploy", operator, json={"message": "no"})
        assert refused.status_code == 403, refused.text
        assert call("POST", "/mappings/drafts", viewer).status_code == 403
        assert call("POST", f"/events/{event_id}/dismiss", viewer, json={"reason": "x"}).status_code == 403
        gone = call("POST", f"/events/{event_id}/dismiss", operator, json={"reason": "a test message"})
        assert gone.status_code == 200, gone.text
        shown = call("GET", f"/events/{event_id}", viewer).json()
        assert shown["last_action"]["by"] == "Otto Operator"
        assert call("GET", "/reconciliation/runs", viewer).json() == []
        missing = call("GET", f"/reconciliation/runs/{uuid.uuid4()}/report", viewer)
        assert missing.status_code == 404, missing.text
        audit = call("GET", "/audit", viewer).json()
        assert [a["action"] for a in audit][:2] == ["events.dismiss", "drafts.create"]


def accessible(page: Any) -> None:
    """No serious or critical axe-core violation on the page (axe-playwright-python's bundled axe)."""
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    serious = [(v["id"], v["help"]) for v in violations if v["impact"] in ("serious", "critical")]
    assert not serious, f"{page.url}: {serious}"


def login(browser: Any, url: str, sub: str) -> Any:
    """A new page logged in as ``sub`` through the provider's form (one click on the user)."""
    page = browser.new_page()
    page.goto(f"{url}/console/login")
    page.get_by_role("button", name=sub).click()
    page.wait_for_url(f"{url}/console/")
    return page


def lower_roles_see_less(browser: Any, url: str, hub: HubRuntime, shots: Path) -> None:
    """An operator sees replay but no draft or deploy control; a viewer sees neither, and masked data."""
    operator = login(browser, url, "otto")
    send(url, junk_channel(52, b"ELSEWHERE"))  # NOWHERE is mapped now
    other = quarantined_event(hub, "PX-SYN-000000052")
    operator.goto(f"{url}/console/events/{other}")
    assert operator.locator("#replay").count() == 1
    assert operator.locator("#start-draft").count() == 0 and operator.locator("#deploy").count() == 0

    viewer = login(browser, url, "vera")
    viewer.goto(f"{url}/console/events/{other}")
    assert "***" in viewer.locator("#raw-body").inner_text()
    assert viewer.locator("#replay").count() == 0
    viewer.screenshot(path=shots / "event-viewer.png", full_page=True)
    for name, table in (("pollers", "#pollers"), ("reconciliation", "#runs"), ("audit", "table")):
        viewer.goto(f"{url}/console/{name}")
        assert viewer.locator(table).count() == 1
        viewer.screenshot(path=shots / f"{name}.png", full_page=True)
        accessible(viewer)


def processed_and_deployed_by(hub: HubRuntime) -> tuple[str, bool]:
    """Who deployed the mappings, and whether order PX-SYN-000000051 landed."""
    with hub.database.engine.connect() as conn:
        status = conn.execute(
            text("SELECT status FROM service_orders WHERE external_order_id = 'PX-SYN-000000051'")
        ).scalar_one_or_none()
        deployer = conn.execute(
            text("SELECT name FROM operator_actions WHERE action = 'mappings.deploy'")
        ).scalar_one()
    return deployer, status is not None


def test_steward_fixes_a_quarantined_order_in_the_browser(
    console_hub: HubRuntime, provider: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with ConsoleServer(console_hub) as live, sync_playwright() as playwright:
        send(live.url, junk_channel(51))
        event_id = quarantined_event(console_hub, "PX-SYN-000000051")
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = login(browser, live.url, "stella")
            page.screenshot(path=shots / "dashboard.png", full_page=True)
            assert "pyxis 1 100.00% (above the line)" in " ".join(
                page.locator("#error-rates").inner_text().split()
            )
            accessible(page)
            page.goto(f"{live.url}/console/events")
            page.locator(f"a[href$='/{event_id}']").click()
            assert "channel" in page.locator("#field-errors").inner_text()
            page.screenshot(path=shots / "event.png", full_page=True)
            accessible(page)
            page.locator("#start-draft").click()
            page.select_option("#crosswalk", "crosswalks/channels.csv")
            page.fill("#row", "PHONE,NOWHERE,,,Kiosk orders taken by phone")
            page.locator("#add-row").click()
            page.locator("#preview-ok").wait_for()
            assert "newly mapped 1" in page.locator("#impact").inner_text()
            page.screenshot(path=shots / "draft.png", full_page=True)
            accessible(page)
            page.fill("#message", "Kiosk channel NOWHERE is a phone sale")
            page.locator("#deploy").click()
            page.wait_for_url(f"**/console/events/{event_id}?deployed=*")
            page.locator("#replay").click()
            page.wait_for_selector("#event-status")
            assert page.locator("#event-status").inner_text() == "mapped"
            page.goto(f"{live.url}/console/mappings")
            assert "Stella Steward" in page.locator("#history tbody tr").first.inner_text()
            page.screenshot(path=shots / "mappings.png", full_page=True)
            accessible(page)
            page.goto(f"{live.url}/console/orders")
            page.screenshot(path=shots / "orders.png", full_page=True)
            accessible(page)

            # A forged cross-site POST (the session cookie, no CSRF token) is refused.
            forged = page.request.post(f"{live.url}/console/drafts", form={"event": event_id})
            assert forged.status == 403

            page.get_by_role("button", name="Log out").click()
            page.wait_for_url(f"{provider}/**")  # RP-initiated logout at the provider
            assert page.request.get(f"{live.url}/console/", max_redirects=0).status == 303

            lower_roles_see_less(browser, live.url, console_hub, shots)
        finally:
            browser.close()
    assert processed_and_deployed_by(console_hub) == ("Stella Steward", True)
    assert {p.name for p in shots.iterdir()} >= {"dashboard.png", "event.png", "draft.png", "mappings.png"}
