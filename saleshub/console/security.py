"""The console's web security: session login over OIDC (code flow with PKCE), CSRF, headers.

The browser logs in with the authorization-code flow and PKCE (authlib's Starlette client). The
session is a signed cookie (``Secure``, ``HttpOnly``, ``SameSite=Lax``: the provider's redirect back
is a top-level navigation, which Lax lets through) holding the subject, name, role, the login
time's expiry and a CSRF token; it carries no personal data beyond the person's own name. Every
state-changing form posts the CSRF token and is refused without it or from another origin. Every
console and API response carries a strict Content-Security-Policy: scripts, styles and images from
the hub only, no inline script, no framing. The one exception is a self-contained reconciliation
report (its styles are inline): it is served under ``SANDBOXED_DOCUMENT_POLICY``, a sandbox where
no script runs at all and nothing is fetched, which the middleware leaves as the response set it.
"""

from __future__ import annotations

import hmac
import secrets
import time

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from saleshub.platform.auth import AuthenticationError, ForbiddenError, Principal

__all__ = [
    "SANDBOXED_DOCUMENT_POLICY",
    "SecurityHeaders",
    "check_csrf",
    "content_security_policy",
    "csrf_token",
    "session_principal",
    "start_session",
]

_GUARDED = ("/console", "/api/v1")

#: The policy of a self-contained HTML document (a reconciliation report): its inline styles apply,
#: but it is sandboxed (a unique origin, no script, no form, no plugin) and may load nothing but
#: ``data:`` images; it can neither run code nor reach anything.
SANDBOXED_DOCUMENT_POLICY = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_CSP = b"content-security-policy"


def content_security_policy(form_targets: str = "") -> str:
    """The console's policy: everything from the hub itself, nothing inline, never framed."""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src 'self'; form-action 'self' {form_targets}".rstrip()
        + "; frame-ancestors 'none'; base-uri 'none'"
    )


class SecurityHeaders:
    """Adds the CSP and the other protective headers to the console's and the API's responses.

    A plain ASGI middleware: requests outside ``/console`` and ``/api/v1`` (the webhooks) pass
    straight through, untouched and at no cost.
    """

    def __init__(self, app: ASGIApp, form_targets: str) -> None:
        self.app = app
        policy = content_security_policy(form_targets)
        self.headers = [
            (b"content-security-policy", policy.encode("latin-1")),
            (b"x-content-type-options", b"nosniff"),
            # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on form posts
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
            (b"cache-control", b"no-store"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to a guarded path's response."""
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(_GUARDED):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = message.get("headers", [])
                sandboxed = (_CSP, SANDBOXED_DOCUMENT_POLICY.encode("latin-1")) in [
                    (n.lower(), v) for n, v in present
                ]
                added = [(n, v) for n, v in self.headers if not (sandboxed and n == _CSP)]
                names = {name for name, _ in added}
                kept = [(n, v) for n, v in present if n.lower() not in names]
                message = {**message, "headers": kept + added}
            await send(message)

        await self.app(scope, receive, with_headers)


def start_session(request: Request, principal: Principal, minutes: int) -> None:
    """Log ``principal`` in: a fresh session with its expiry and CSRF token."""
    request.session.clear()
    request.session.update(
        {
            "sub": principal.subject,
            "name": principal.name,
            "role": principal.role,
            "expires": int(time.time()) + minutes * 60,
            "csrf": secrets.token_urlsafe(32),
        }
    )


def session_principal(request: Request) -> Principal:
    """The logged-in person, or ``AuthenticationError`` (no session, or it has expired)."""
    session = request.session
    if "sub" not in session:
        raise AuthenticationError("not logged in")
    if int(session.get("expires", 0)) < time.time():
        session.clear()
        raise AuthenticationError("the session has expired; log in again")
    return Principal(subject=session["sub"], name=session["name"], role=session["role"])


def csrf_token(request: Request) -> str:
    """The session's CSRF token (for the forms of a page)."""
    return str(request.session.get("csrf", ""))


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a state change without the session's token or from another origin."""
    expected = csrf_token(request)
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise ForbiddenError("the form's CSRF token is missing or wrong; reload the page and try again")
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise ForbiddenError(f"a request from {origin} may not change anything here")
