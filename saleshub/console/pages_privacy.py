"""The console's privacy page (admin): find a data subject (the dry run of an erasure), erase it with
the request's reference, or download everything the hub holds about it; through the functions
``saleshub privacy`` calls, audited.

The search is a POST (the values are personal data: never in a URL, a log line or the history).
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from saleshub.actions import privacy as privacy_actions
from saleshub.console.api import actor_of
from saleshub.console.rendering import acting, failure, page, runtime_of, to_login, who
from saleshub.errors import SalesHubError

__all__ = ["privacy_pages_router"]


def _criteria(emails: str, phones: str, references: str) -> privacy_actions.Criteria:
    def values(text: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in text.replace(",", "\n").splitlines() if v.strip())

    return privacy_actions.Criteria(values(emails), values(phones), values(references))


def privacy_pages_router() -> APIRouter:
    """The ``/console/privacy`` routes."""
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/privacy")
    def privacy(request: Request) -> Response:
        me = who(request)
        if me is None:
            return to_login()
        return page(request, "privacy.html", me, found=None, erased=None, active="privacy")

    @router.post("/privacy")
    def act(
        request: Request,
        action: str = Form("find"),
        emails: str = Form(""),
        phones: str = Form(""),
        references: str = Form(""),
        reason: str = Form(""),
        csrf: str = Form(""),
    ) -> Response:
        me = acting(request, csrf, "admin", "finding, erasing or exporting a data subject")
        if isinstance(me, RedirectResponse):
            return me
        hub = runtime_of(request)
        criteria = _criteria(emails, phones, references)
        try:
            if action == "export":
                document = privacy_actions.export(
                    hub.database.engine, criteria, actor=actor_of(me), reason=reason
                )
                body = json.dumps(document, ensure_ascii=False, indent=2, default=str)
                return Response(
                    body,
                    media_type="application/json",
                    headers={"Content-Disposition": 'attachment; filename="subject-export.json"'},
                )
            result = privacy_actions.erase(
                hub.database.engine,
                criteria,
                actor=actor_of(me),
                reason=reason,
                dry_run=action != "erase",
                outbox=hub.outbox,
            )
        except SalesHubError as exc:
            return failure(request, me, exc)
        return page(
            request,
            "privacy.html",
            me,
            found=result.subject,
            erased=None if result.dry_run else result,
            emails=emails,
            phones=phones,
            references=references,
            active="privacy",
        )

    return router
