"""``saleshub audit``: the operator actions recorded (who, what, on which object, why, when)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from saleshub.commands.common import database
from saleshub.console import out
from saleshub.store.audit import list_actions
from saleshub.store.failures import database_errors

__all__ = ["audit"]


def audit(
    action: Annotated[str | None, typer.Option(help="only this action, e.g. mappings.deploy")] = None,
    subject: Annotated[str | None, typer.Option(help="only this person (the provider's subject)")] = None,
    before: Annotated[int | None, typer.Option(help="only actions older than this number (paging)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """Operator actions, newest first: dismissals, replays, drafts, deploys, rollbacks."""
    with database() as db, database_errors(), db.engine.connect() as conn:
        entries = list_actions(conn, limit=limit, before=before, action=action, subject=subject)
    table = Table("#", "when (UTC)", "who", "subject", "action", "object", "reason", title="Operator actions")
    for entry in entries:
        table.add_row(
            str(entry.action_id),
            f"{entry.acted_at:%Y-%m-%d %H:%M:%S}",
            entry.name,
            entry.subject,
            entry.action,
            f"{entry.object_type} {entry.object_id}",
            entry.reason or "",
        )
    out.print(table)
    if not entries:
        out.print("no operator actions recorded")
