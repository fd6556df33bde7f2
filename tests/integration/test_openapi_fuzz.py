"""schemathesis against the served OpenAPI document: no generated request gets a server error.

The cases come from ``contracts/openapi.json``, which ``test_webhooks`` proves equal to the document
the app serves at ``/openapi.json``.

The only 5xx the contract documents is 503 (database unavailable); with the database up there must
be none. Every generated case is sent twice over loopback to the real uvicorn server: as generated
(random systems, headers and bodies: 401, 404, 413, 415 or 422 expected), and with its system set to
a known one and a valid Standard Webhooks signature over its exact body, so the generated bodies get
past the signature check into decoding, classification and mapping.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, status_code_conformance

from saleshub.runtime import HubRuntime
from tests.integration.conftest import SECRET, LiveServer
from tests.support.synthetic import signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SYSTEMS = ("pyxis", "tempo", "erp")


@pytest.fixture
def live(hub: HubRuntime) -> Iterator[str]:
    with LiveServer(hub) as server:
        yield server.url


schema = schemathesis.openapi.from_path(Path(__file__).resolve().parents[2] / "contracts" / "openapi.json")


def body_of(kwargs: dict[str, object]) -> bytes:
    if "json" in kwargs:
        return json.dumps(kwargs["json"]).encode()
    data = kwargs.get("data", b"")
    return data if isinstance(data, bytes) else str(data).encode()


@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case, live: str) -> None:
    response = case.call(base_url=live)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
    if case.method != "POST":
        return
    kwargs = case.as_transport_kwargs(base_url=live)
    body = body_of(kwargs)
    system = SYSTEMS[zlib.crc32(body) % len(SYSTEMS)]
    content_type = str(dict(kwargs["headers"]).get("Content-Type", "application/json"))  # type: ignore[call-overload]
    headers = signed_headers(SECRET, f"fuzz-{zlib.crc32(body)}-{case.id}", body, content_type=content_type)
    signed = httpx.post(f"{live}/webhooks/{system}", content=body, headers=headers, timeout=30)
    assert signed.status_code < 500, (
        f"{signed.status_code} for a signed {system} body {body[:200]!r}: {signed.text[:500]}"
    )
    assert signed.status_code in (200, 202, 415, 422), signed.text[:500]
