"""The console's mapping pages: the history with who deployed each revision, two revisions side by
side with the changes in a steward's words (the function of ``saleshub mappings diff``), and rollback.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from saleshub.actions import mappings as mapping_actions
from saleshub.console.api import actor_of
from saleshub.console.rendering import acting, failure, page, runtime_of, to_login, who
from saleshub.errors import SalesHubError
from saleshub.runtime import HubRuntime
from saleshub.stewards.deployment import load_deployed
from saleshub.store.failures import database_errors

__all__ = ["FileSides", "Row", "mapping_pages_router", "side_by_side"]


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a side-by-side view: the old line, the new one, and how they differ."""

    old_no: int | None
    old: str
    new_no: int | None
    new: str
    kind: str  # equal, replace, delete, insert


@dataclass(frozen=True, slots=True)
class FileSides:
    """A file of two revisions, line by line side by side (only files that differ)."""

    path: str
    rows: list[Row]


def side_by_side(old: dict[str, str], new: dict[str, str]) -> list[FileSides]:
    """Every file that differs between ``old`` and ``new``, its lines paired for reading side by side."""
    found = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path, "").splitlines(), new.get(path, "").splitlines()
        if path in old and path in new and before == after:
            continue
        rows: list[Row] = []
        matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
        for kind, a1, a2, b1, b2 in matcher.get_opcodes():
            for offset in range(max(a2 - a1, b2 - b1)):
                i, j = a1 + offset, b1 + offset
                rows.append(
                    Row(
                        i + 1 if i < a2 else None,
                        before[i] if i < a2 else "",
                        j + 1 if j < b2 else None,
                        after[j] if j < b2 else "",
                        kind,
                    )
                )
        found.append(FileSides(path, rows))
    return found


def _install_deployed(hub: HubRuntime) -> None:
    # This process maps with the new revision at once (the others follow within seconds).
    deployed = load_deployed(hub.database.engine)
    if deployed is not None:
        hub.mappings.install(*deployed)


def mapping_pages_router() -> APIRouter:
    """The ``/console/mappings`` routes."""
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/mappings")
    def mappings(request: Request) -> Response:
        me = who(request)
        if me is None:
            return to_login()
        with database_errors(), runtime_of(request).database.engine.connect() as conn:
            revisions = mapping_actions.history(conn, 50)
        return page(request, "mappings.html", me, revisions=revisions, active="mappings")

    @router.get("/mappings/diff")
    def diff(request: Request, old: str, new: str) -> Response:
        me = who(request)
        if me is None:
            return to_login()
        engine = runtime_of(request).database.engine
        try:
            before_no, after_no = mapping_actions.parse_revision(old), mapping_actions.parse_revision(new)
            before = mapping_actions.revision_files(engine, before_no)
            after = mapping_actions.revision_files(engine, after_no)
        except SalesHubError as exc:
            return failure(request, me, exc)
        return page(
            request,
            "diff.html",
            me,
            old=before_no,
            new=after_no,
            changes=mapping_actions.diff(before, after),
            files=side_by_side(before, after),
            active="mappings",
        )

    @router.post("/mappings/rollback")
    def rollback(
        request: Request, revision: int = Form(...), message: str = Form(""), csrf: str = Form("")
    ) -> Response:
        me = acting(request, csrf, "steward", "rolling back the mappings")
        if isinstance(me, RedirectResponse):
            return me
        hub = runtime_of(request)
        try:
            number = mapping_actions.rollback_to(
                hub.database.engine, revision, message.strip() or None, actor_of(me)
            )
        except SalesHubError as exc:
            return failure(request, me, exc, 409)
        _install_deployed(hub)
        return RedirectResponse(f"/console/mappings?deployed={number}", status_code=303)

    return router
