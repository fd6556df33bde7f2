"""Recorded events: resolve an id, show one, dismiss one, replay a selection."""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine

from saleshub.errors import InvalidRequestError, NotFoundError, StateConflictError
from saleshub.receive.replay import Replayer, ReplaySelection, ReplaySummary, select_events
from saleshub.runtime import HubRuntime
from saleshub.store import events as store_events
from saleshub.store import queries
from saleshub.store.audit import Actor, last_actors, record_action
from saleshub.store.failures import database_errors
from saleshub.store.queries import OpenedRow

__all__ = [
    "cli_actor",
    "dismiss_event",
    "event_record",
    "first_error",
    "parse_event_uuid",
    "replay_events",
    "resolve_event_id",
]


def cli_actor() -> Actor:
    """The person at the terminal, for actions taken with the command line."""
    user = getpass.getuser()
    return Actor(subject=f"cli:{user}", name=user)


def first_error(errors: dict[str, Any] | None) -> str:
    """A one-line reason from an event's structured errors."""
    if not errors:
        return ""
    fields = errors.get("fields") or []
    if fields:
        first = fields[0]
        more = f" (+{len(fields) - 1} more)" if len(fields) > 1 else ""
        return f"{first['target']}: {first['rule']}{more}"
    return str(errors.get("message", ""))


def parse_event_uuid(text: str) -> uuid.UUID:
    """``text`` as a UUID, or an error saying what an event id looks like."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidRequestError(
            f"an event id is a UUID like 1fba2e71-9b1c-4f59-a5f0-849f1f2cc6ea; got {text!r}"
        ) from None


def resolve_event_id(conn: Connection, text: str) -> uuid.UUID:
    """The event ``text`` names: a whole id, or an id prefix that only one event has."""
    cleaned = text.strip().lower()
    if len(cleaned) == 36:
        return parse_event_uuid(cleaned)
    if len(cleaned) < 4 or any(c not in "0123456789abcdef-" for c in cleaned):
        raise InvalidRequestError(
            f"an event id or its first characters (4 or more hexadecimal digits) is needed; got {text!r}"
        )
    found = queries.event_ids_with_prefix(conn, cleaned)
    if not found:
        raise NotFoundError(f"no event id starts with {cleaned}")
    if len(found) > 1:
        shown = ", ".join(str(event_id) for event_id in found)
        raise InvalidRequestError(
            f"{cleaned} is the start of several event ids ({shown}); give more characters"
        )
    return found[0]


def event_record(conn: Connection, row: OpenedRow) -> dict[str, Any]:
    """Everything recorded about an event except its raw bytes, with who dismissed it if anyone did."""
    hidden = ("raw_body", "body_sha256", "raw_body_erased", "data_key_id")
    record = {key: value for key, value in row._mapping.items() if key not in hidden}
    record["body_sha256"] = bytes(row.body_sha256).hex()
    record["raw_body"] = (
        "erased"
        if row.raw_body_erased
        else "purged"
        if row.raw_body_purged_at
        else ("with the original" if row.replay_of else "kept")
    )
    acted = last_actors(conn, "event", [str(row.event_id)]).get(str(row.event_id))
    record["last_action"] = (
        None
        if acted is None
        else {
            "action": acted.action,
            "by": acted.name,
            "subject": acted.subject,
            "at": acted.acted_at,
            "reason": acted.reason,
        }
    )
    return record


def dismiss_event(engine: Engine, event_id: uuid.UUID, reason: str, actor: Actor) -> str:
    """Close an open quarantined or failed event as junk; the status it had."""
    cleaned = reason.strip()
    if not cleaned:
        raise InvalidRequestError("a reason must say why the event is dismissed")
    with database_errors(), engine.begin() as conn:
        previous = store_events.dismiss(conn, event_id, cleaned)
        if previous is None:
            row = queries.event(conn, event_id)
            if row is None:
                raise NotFoundError(f"no event {event_id}")
            state = "replayed" if row.superseded_by else row.status
            raise StateConflictError(f"event {event_id} is {state}, not an open quarantined or failed event")
        record_action(conn, actor, "events.dismiss", "event", str(event_id), cleaned, {"was": previous})
    return previous


def replay_events(
    hub: HubRuntime,
    selection: ReplaySelection,
    actor: Actor,
    progress: Callable[[int], None] | None = None,
    reason: str | None = None,
) -> ReplaySummary:
    """Map the selected stored events again with ``hub``'s processor; what became of them."""
    keys = select_events(hub.database.engine, selection)
    replayer = Replayer(hub.recorder, hub.adapters, hub.processor())
    summary = replayer.replay(keys, progress)
    detail: dict[str, Any] = {"selected": summary.selected, "statuses": dict(summary.statuses)}
    with database_errors(), hub.database.engine.begin() as conn:
        if selection.event_id is not None:
            record_action(conn, actor, "events.replay", "event", str(selection.event_id), reason, detail)
        else:
            target = selection.system or "all"
            record_action(conn, actor, "events.replay", "selection", target, reason, detail)
    return summary
