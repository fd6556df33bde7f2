"""What every console page shares: the templates, the person of the session, masking, errors.

Each page module (``pages``, ``pages_orders``, ``pages_mappings``, ``pages_pollers``) renders through
``page`` so every template gets the person (``me``) and the session's CSRF token (``csrf``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from saleshub.console.security import check_csrf, csrf_token, session_principal
from saleshub.errors import NotFoundError, SalesHubError
from saleshub.platform.auth import AuthenticationError, Principal
from saleshub.platform.masking import mask
from saleshub.runtime import HubRuntime

__all__ = [
    "TEMPLATES",
    "acting",
    "age_text",
    "failure",
    "page",
    "runtime_of",
    "shown",
    "shown_json",
    "shown_value",
    "to_login",
    "who",
]

#: The console's Jinja2 templates.
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


def age_text(seconds: float | None) -> str:
    """A duration as ``saleshub poll status`` writes it (``42 s``, ``7 min``, ``3 h``; ``None``: never)."""
    if seconds is None:
        return "never caught up"
    whole = int(seconds)
    if abs(whole) < 120:
        return f"{whole} s"
    if abs(whole) < 7200:
        return f"{whole // 60} min"
    return f"{whole // 3600} h"


TEMPLATES.env.filters["age"] = age_text


def runtime_of(request: Request) -> HubRuntime:
    """The running hub of the application."""
    found: HubRuntime = request.app.state.runtime
    return found


def shown(principal: Principal, text: str) -> str:
    """``text`` as the person may see it: personal data masked for viewers."""
    return text if principal.sees_personal_data else mask(text)


def shown_json(principal: Principal, value: Any) -> str:
    """``value`` as indented JSON, masked for viewers."""
    return shown(principal, json.dumps(value, default=str, ensure_ascii=False, indent=2))


def shown_value(principal: Principal, value: Any) -> str:
    """``value`` as compact JSON, masked for viewers."""
    return shown(principal, json.dumps(value, default=str, ensure_ascii=False))


def page(request: Request, name: str, principal: Principal, **context: Any) -> HTMLResponse:
    """Template ``name`` rendered for ``principal`` with the session's CSRF token."""
    return TEMPLATES.TemplateResponse(
        request, name, {"me": principal, "csrf": csrf_token(request), **context}
    )


def who(request: Request) -> Principal | None:
    """The logged-in person, or ``None`` (no session, or an expired one)."""
    try:
        return session_principal(request)
    except AuthenticationError:
        return None


def to_login() -> RedirectResponse:
    """Where a request without a session goes."""
    return RedirectResponse("/console/login", status_code=303)


def acting(request: Request, csrf: str, role: str, what: str) -> Principal | RedirectResponse:
    """Who submits a form that changes state: the login page when nobody is signed in; the form's
    CSRF token and the person's role are checked (a ``ForbiddenError`` naming ``what`` otherwise)."""
    me = who(request)
    if me is None:
        return to_login()
    check_csrf(request, csrf)
    me.require(role, what)
    return me


def failure(request: Request, principal: Principal, exc: SalesHubError, status: int = 400) -> HTMLResponse:
    """The error page of an action's error (404 for a missing object)."""
    response = page(request, "error.html", principal, message=str(exc))
    response.status_code = 404 if isinstance(exc, NotFoundError) else status
    return response
