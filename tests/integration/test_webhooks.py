"""``POST /webhooks/{system}`` over real HTTP (uvicorn on loopback) against a real PostgreSQL."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import unicodedata
import uuid
from pathlib import Path

import httpx
import pytest
import uvicorn

from saleshub.receive.app import create_app
from saleshub.runtime import HubRuntime
from saleshub.store import queries
from tests.conftest import SAMPLES
from tests.integration.conftest import SECRET, LiveServer, free_port, open_hub, processed
from tests.support.synthetic import pyxis_event, signed_headers

pytestmark = pytest.mark.integration

OPENAPI = Path(__file__).resolve().parents[2] / "contracts" / "openapi.json"


def post(
    client: httpx.Client, body: bytes, webhook_id: str, system: str = "pyxis", **kwargs: str
) -> httpx.Response:
    return client.post(
        f"/webhooks/{system}", content=body, headers=signed_headers(SECRET, webhook_id, body, **kwargs)
    )


def test_accepted_then_processed_then_repeated(server: httpx.Client, hub: HubRuntime) -> None:
    body = pyxis_event(1)
    first = post(server, body, "msg_1")
    assert first.status_code == 202, first.text
    receipt = first.json()
    assert receipt["status"] == "accepted" and receipt["repeated"] is False
    assert processed(hub, receipt["event_id"]).status == "mapped"
    again = post(server, body, "msg_1")
    assert again.status_code == 200
    repeat = again.json()
    assert repeat["event_id"] == receipt["event_id"] and repeat["repeated"] is True
    assert repeat["status"] == "mapped" and repeat["order_version"] == 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "webhook-id header is missing"),
        ({"webhook-id": "m", "webhook-timestamp": "soon", "webhook-signature": "v1,AAAA"}, "whole seconds"),
        ({"webhook-id": "m", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"}, "too old"),
        ({"webhook-id": "m", "webhook-timestamp": "NOW", "webhook-signature": "v1,!!!"}, "no well-formed"),
        ({"webhook-id": "m", "webhook-timestamp": "99999999999", "webhook-signature": "v1,AAAA"}, "future"),
        (
            {"webhook-id": "m", "webhook-timestamp": "NOW", "webhook-signature": "v1,%%%% v2,x ,"},
            "no well-formed",
        ),
        (
            {"webhook-id": "m", "webhook-timestamp": "NOW", "webhook-signature": "v1,AAAA"},
            "no signature matches",
        ),
        (
            {"webhook-id": "m i", "webhook-timestamp": "NOW", "webhook-signature": "v1,AAAA"},
            "printable ASCII",
        ),
    ],
)
def test_bad_signatures_get_401_and_nothing_is_recorded(
    server: httpx.Client, hub: HubRuntime, headers: dict[str, str], reason: str
) -> None:
    headers = {k: v.replace("NOW", str(int(time.time()))) for k, v in headers.items()}
    response = server.post(
        "/webhooks/pyxis", content=pyxis_event(1), headers={"content-type": "application/json", **headers}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert reason in response.json()["detail"]
    with hub.database.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sales_system_integration_events").scalar_one() == 0


def test_rotated_secrets_any_listed_signature_is_enough(server: httpx.Client) -> None:
    body = pyxis_event(2)
    headers = signed_headers(SECRET, "msg_rot", body)
    headers["webhook-signature"] = (
        "v1,c29tZXRoaW5nIGVsc2UgZW50aXJlbHkgMzIgYnl0ZXM= " + headers["webhook-signature"]
    )
    assert server.post("/webhooks/pyxis", content=body, headers=headers).status_code == 202


def test_signature_from_another_secret_or_another_body_fails(server: httpx.Client) -> None:
    body = pyxis_event(3)
    headers = signed_headers(SECRET, "msg_x", body)
    assert server.post("/webhooks/pyxis", content=body + b" ", headers=headers).status_code == 401


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("empty", b""),
        ("nan", b'{"eventId": "e", "value": NaN}'),
        ("duplicate keys", b'{"eventId": "e", "eventId": "f"}'),
        ("huge number", b'{"eventId": "e", "n": ' + b"9" * 5000 + b"}"),
        ("deep nesting", b"[" * 10_000 + b"]" * 10_000),
        ("invalid utf-8", b'{"eventId": "\xff\xfe"}'),
        ("not an event", b'{"hello": "world"}'),
        ("lone surrogate", b'{"eventId": "\\ud800"}'),
    ],
)
def test_bad_bodies_get_422_and_are_recorded(
    server: httpx.Client, hub: HubRuntime, name: str, body: bytes
) -> None:
    response = post(server, body, f"bad-{name.replace(' ', '-')}")
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"]["stage"] in ("decode", "classify")
    with hub.database.engine.connect() as conn:
        stored = queries.event(conn, uuid.UUID(problem["event_id"]))
    assert stored is not None and stored.raw_body == body and stored.status == "quarantined"


def test_wrong_content_type_gets_415_and_is_recorded(server: httpx.Client) -> None:
    body = pyxis_event(4)
    response = post(server, body, "ct", content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["event_id"]


def test_oversize_body_gets_413(db_url: str) -> None:
    hub = open_hub(db_url, web={"max_body_bytes": 2048})
    try:
        with LiveServer(hub) as live, httpx.Client(base_url=live.url) as client:
            response = post(client, b"x" * 4096, "big")
    finally:
        hub.close()
    assert response.status_code == 413


def latin1(text: str) -> str:
    """``text`` with letters outside ISO-8859-1 (Polish ł, ś …) reduced to their base letter."""
    return "".join(
        ch if ch.encode("latin-1", "ignore") else unicodedata.normalize("NFKD", ch)[0].replace("ł", "l")
        for ch in text
    )


def test_iso_8859_1_xml_is_decoded_and_mapped(server: httpx.Client, hub: HubRuntime) -> None:
    text = (SAMPLES / "tempo" / "01_pl_in_store_installation.xml").read_text(encoding="utf-8")
    text = text.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    text = text.replace("Domofon nr 15.", "Café Müller, Straße 5")
    body = latin1(text).encode("latin-1")
    assert "ü".encode("latin-1") in body
    response = post(server, body, "tempo-latin1", system="tempo", content_type="application/xml")
    assert response.status_code == 202, response.text
    assert processed(hub, response.json()["event_id"]).status == "mapped"
    with hub.database.engine.connect() as conn:
        order_id = conn.exec_driver_sql("SELECT hub_order_id FROM service_orders").scalar_one()
        order = queries.find_order(conn, hub_order_id=order_id)  # notes are personal: sealed at rest
    assert order is not None and order.content["notes"] == "Café Müller, Straße 5"


def test_no_redirects_and_unknown_systems(server: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    body = pyxis_event(5)
    with caplog.at_level(logging.WARNING, logger="saleshub.receive.webhooks"):
        slash = server.post("/webhooks/pyxis/", content=body, headers=signed_headers(SECRET, "s", body))
    assert slash.status_code == 404
    assert slash.headers["content-type"].startswith("application/problem+json"), slash.headers
    assert "no trailing slash" in slash.json()["detail"]
    assert any("webhook refused: status=404 system=pyxis" in r.getMessage() for r in caplog.records)
    unknown = post(server, body, "u", system="acme")
    assert unknown.status_code == 404 and "known: erp, pyxis, tempo" in unknown.json()["detail"]


def test_health_and_readiness(server: httpx.Client) -> None:
    assert server.get("/health/live").json() == {"status": "ok"}
    ready = server.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"


def test_database_down_gets_503_with_retry_after(db_url: str) -> None:
    hub = open_hub("postgresql+psycopg://hub@127.0.0.1:9/none?connect_timeout=2")
    try:
        with LiveServer(hub) as live, httpx.Client(base_url=live.url, timeout=30) as client:
            response = post(client, pyxis_event(6), "down")
            ready = client.get("/health/ready")
    finally:
        hub.close()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert ready.status_code == 503


def test_openapi_document_matches_the_app(hub: HubRuntime) -> None:
    committed = json.loads(OPENAPI.read_text(encoding="utf-8"))
    assert create_app(hub).openapi() == committed, (
        "run `saleshub api openapi --output contracts/openapi.json`"
    )


def test_an_error_of_the_hub_is_a_problem_document_that_closes_the_connection(hub: HubRuntime) -> None:
    app = create_app(hub)

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{config.port}") as client:
            response = client.get("/broken")
            assert response.status_code == 500
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["connection"] == "close"
            assert response.json()["title"] == "Internal error"
            assert client.get("/health/live").status_code == 200  # a new connection, not a reset
    finally:
        server.should_exit = True
        thread.join(10)


def test_an_event_the_database_refuses_to_record_is_kept_as_failed(
    server: httpx.Client, hub: HubRuntime
) -> None:
    with hub.database.engine.begin() as conn:
        conn.exec_driver_sql(
            "ALTER TABLE sales_system_integration_events ADD CONSTRAINT test_refuses "
            "CHECK (content_type IS NULL OR content_type NOT LIKE '%%refuse-me%%')"
        )
    body = pyxis_event(9)
    response = post(server, body, "refused", content_type="application/json; refuse-me=1")
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["status"] == "failed" and "test_refuses" in receipt["errors"]["message"]
    with hub.database.engine.connect() as conn:
        stored = queries.event(conn, uuid.UUID(receipt["event_id"]))
    assert stored is not None and stored.raw_body == body and stored.status == "failed"


def test_a_client_that_disconnects_mid_body_is_one_log_line_not_a_traceback(
    hub: HubRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    # As `saleshub serve` runs it: uvicorn's own lines go through the hub's handlers (log_config=None).
    config = uvicorn.Config(create_app(hub), host="127.0.0.1", port=free_port(), log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    caplog.set_level(logging.INFO)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        body = pyxis_event(3)
        headers = signed_headers(SECRET, "gone-mid-body", body)
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        with socket.create_connection(("127.0.0.1", config.port)) as sock:
            sock.sendall(
                f"POST /webhooks/pyxis HTTP/1.1\r\nhost: hub\r\ncontent-length: {len(body)}\r\n{head}\r\n".encode()
                + body[: len(body) // 2]
            )
        deadline = time.monotonic() + 30
        while not any(
            "disconnect" in r.getMessage().lower() or r.levelno >= logging.ERROR for r in caplog.records
        ):
            assert time.monotonic() < deadline, "nothing was logged about the abandoned request"
            time.sleep(0.05)
    finally:
        server.should_exit = True
        thread.join(10)
    serious = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert serious == [], [r.getMessage() for r in serious]
    about = [r for r in caplog.records if "disconnect" in r.getMessage().lower()]
    assert len(about) == 1 and about[0].levelno in (logging.INFO, logging.WARNING)
    assert "pyxis" in about[0].getMessage()
    with hub.database.engine.connect() as conn:
        recorded = conn.exec_driver_sql(
            "SELECT count(*) FROM sales_system_integration_events WHERE idempotency_key = 'gone-mid-body'"
        ).scalar_one()
    assert recorded == 0
