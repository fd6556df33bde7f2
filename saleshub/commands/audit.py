"""``saleshub audit``: the operator actions recorded, and the tamper-evident seals of the audit trail.

* ``audit`` / ``audit actions``: who did what, on which object, why, when (newest first);
* ``audit seal [--until T]``: seal every ended, unsealed hour (what ``saleshub serve`` does every few
  minutes); idempotent; prints each seal with its root and chain hash (and logs it as ``serve``
  does, in the configured format), then the next hour to seal if it waits for its grace;
* ``audit verify [--since T] [--chain HEX…]``: check the rows and the seals; exit 0 with one summary
  line when nothing differs, 1 with every difference and where it is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from saleshub.commands.common import USAGE_ERROR, database, fail, parse_time
from saleshub.console import out
from saleshub.store.audit import list_actions
from saleshub.store.failures import database_errors

__all__ = ["actions", "audit", "audit_app", "seal", "verify"]

audit_app = typer.Typer(
    help="Operator actions, newest first, and the audit trail's seals: list, seal, verify.",
    invoke_without_command=True,
)

_Action = Annotated[str | None, typer.Option(help="only this action, e.g. mappings.deploy")]
_Subject = Annotated[str | None, typer.Option(help="only this person (the provider's subject)")]
_Before = Annotated[int | None, typer.Option(help="only actions older than this number (paging)")]
_Limit = Annotated[int, typer.Option(min=1, max=10_000)]


@audit_app.callback()
def audit(
    ctx: typer.Context,
    action: _Action = None,
    subject: _Subject = None,
    before: _Before = None,
    limit: _Limit = 50,
) -> None:
    """Operator actions, newest first, and the audit trail's seals: list, seal, verify.

    Without a subcommand, lists the operator actions (as ``saleshub audit actions``).
    """
    if ctx.invoked_subcommand is None:
        actions(action=action, subject=subject, before=before, limit=limit)


@audit_app.command("actions")
def actions(
    action: _Action = None, subject: _Subject = None, before: _Before = None, limit: _Limit = 50
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


@audit_app.command("seal")
def seal(
    until: Annotated[
        str | None, typer.Option(help="seal only hours ending by this time (ISO 8601, UTC by default)")
    ] = None,
) -> None:
    """Seal every ended hour not yet sealed (events and operator actions); publish each seal."""
    from saleshub.actions.audit_trail import seal_ended, sealing_outlook
    from saleshub.platform.logs import configure_logging
    from saleshub.platform.settings import Settings
    from saleshub.publish.outbox import Outbox

    limit = parse_time(until, "--until")
    settings = Settings()
    # Each seal's INFO line (its root and chain hash) goes to the log platform, as from `serve`.
    configure_logging(settings)
    now = datetime.now(UTC)  # one instant for sealing and for saying what waits
    with database(settings) as db:
        made = seal_ended(db.engine, Outbox(), until=limit, now=lambda: now)
        outlook = sealing_outlook(db.engine, now=now, until=limit)
    for sealed in made:
        out.print(
            f"sealed {sealed.period_start:%Y-%m-%d %H:00} UTC: {sealed.events_count} events, "
            f"{sealed.actions_count} operator actions, root {sealed.root.hex()}, chain {sealed.chain.hex()}",
            soft_wrap=True,
        )
    out.print(
        f"{len(made)} hours sealed; {outlook}" if made else f"nothing to seal: {outlook}", soft_wrap=True
    )


@audit_app.command("verify")
def verify(
    since: Annotated[
        str | None, typer.Option(help="check the hours ending after this time (ISO 8601, UTC by default)")
    ] = None,
    chain: Annotated[
        list[str] | None,
        typer.Option(help="a chain hash published earlier (log line, Kafka) that a stored seal must carry"),
    ] = None,
) -> None:
    """Check every sealed row and seal; exit 1 listing each change, deletion, insertion, broken link."""
    from saleshub.actions.audit_trail import GRACE
    from saleshub.actions.audit_trail import verify as verify_trail

    start = parse_time(since, "--since")
    try:
        anchors = [bytes.fromhex(value) for value in chain or []]
    except ValueError:
        raise fail("--chain must be a chain hash in hex (64 characters)", USAGE_ERROR) from None
    if any(len(anchor) != 32 for anchor in anchors):
        raise fail("--chain must be a chain hash in hex (64 characters)", USAGE_ERROR)
    with database() as db:
        result = verify_trail(db.engine, since=start, anchors=anchors)
    pending = f"; {result.unsealed_hours} ended hours not yet sealed" if result.unsealed_hours else ""
    if result.intact:
        if result.seals == 0 and not result.unsealed_hours:
            minutes = int(GRACE.total_seconds() // 60)
            out.print(
                "no seals to verify yet: no hour holding rows has ended and passed its "
                f"{minutes}-minute grace",
                soft_wrap=True,
            )
            return
        if result.seals == 0:
            out.print(
                f"no seal yet: {result.unsealed_hours} ended hours not yet sealed "
                "(run `saleshub audit seal`)",
                soft_wrap=True,
            )
            return
        out.print(
            f"audit trail intact: {result.seals} sealed hours from {result.first:%Y-%m-%d %H:00} to "
            f"{result.last:%Y-%m-%d %H:00} UTC, {result.events} events, {result.actions} operator actions; "
            f"last chain {(result.last_chain or b'').hex()}{pending}",
            soft_wrap=True,
        )
        return
    for finding in result.findings:
        out.print(str(finding), soft_wrap=True, highlight=False, markup=False)
    raise fail(f"audit trail NOT intact: {len(result.findings)} differences in {result.seals} sealed hours")
