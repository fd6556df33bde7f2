"""The console's session and CSRF rules, on plain Starlette requests: expiry, tokens, origins."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from starlette.requests import Request

from saleshub.console.security import (
    SANDBOXED_DOCUMENT_POLICY,
    SecurityHeaders,
    check_csrf,
    content_security_policy,
    session_principal,
    start_session,
)
from saleshub.platform.auth import AuthenticationError, ForbiddenError, Principal


def request(session: dict[str, Any], origin: str | None = None) -> Request:
    headers = [(b"host", b"hub.example")] + ([(b"origin", origin.encode())] if origin else [])
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "https",
        "path": "/console/drafts",
        "headers": headers,
        "query_string": b"",
        "server": ("hub.example", 443),
        "session": session,
    }
    return Request(scope)


def logged_in(minutes: int = 60) -> Request:
    req = request({})
    start_session(req, Principal("s-1", "Sam Steward", "steward"), minutes)
    return req


def test_a_session_names_the_person_until_it_expires() -> None:
    req = logged_in()
    assert session_principal(req) == Principal("s-1", "Sam Steward", "steward")
    req.session["expires"] = int(time.time()) - 1
    with pytest.raises(AuthenticationError, match="expired"):
        session_principal(req)
    assert "sub" not in req.session  # cleared: logging in again starts afresh
    with pytest.raises(AuthenticationError, match="not logged in"):
        session_principal(request({}))


def test_a_state_change_needs_the_sessions_token_and_the_same_origin() -> None:
    req = logged_in()
    token = req.session["csrf"]
    check_csrf(req, token)
    for wrong in (None, "", token + "x"):
        with pytest.raises(ForbiddenError, match="CSRF"):
            check_csrf(req, wrong)
    for origin in ("https://evil.example", "null"):
        with pytest.raises(ForbiddenError, match="may not change"):
            check_csrf(request(dict(req.session), origin=origin), token)
    check_csrf(request(dict(req.session), origin="https://hub.example"), token)


def test_the_policy_allows_nothing_inline_and_no_framing() -> None:
    policy = content_security_policy("https://idp.example")
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy and "form-action 'self' https://idp.example" in policy


def _served(policy: bytes | None) -> dict[bytes, bytes]:
    """The headers ``SecurityHeaders`` sends for a console response that set ``policy`` itself."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/html")] + (
            [(b"content-security-policy", policy)] if policy else []
        )
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    scope = {"type": "http", "path": "/console/reconciliation/x", "headers": []}
    asyncio.run(SecurityHeaders(app, "")(scope, receive, send))  # type: ignore[arg-type]
    return dict(sent[0]["headers"])


def test_only_the_sandboxed_document_policy_survives_the_console_policy() -> None:
    strict = content_security_policy("").encode()
    assert _served(None)[b"content-security-policy"] == strict
    assert _served(b"default-src *; script-src 'unsafe-inline'")[b"content-security-policy"] == strict
    sandboxed = SANDBOXED_DOCUMENT_POLICY.encode()
    assert _served(sandboxed)[b"content-security-policy"] == sandboxed
    assert _served(sandboxed)[b"x-content-type-options"] == b"nosniff"
    assert "sandbox" in SANDBOXED_DOCUMENT_POLICY and "script-src" not in SANDBOXED_DOCUMENT_POLICY
