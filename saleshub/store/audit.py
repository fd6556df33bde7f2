"""The operator-action audit trail: who changed what, on which object, why, and when.

Every state change a person makes (dismiss, replay, deploy, rollback, a draft edit) is written here
in the same transaction as the change itself where the change is one transaction, so the trail and
the state never disagree. ``saleshub audit`` lists it; mapping history and event pages read who
deployed or dismissed from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.dialects.postgresql import distinct_on

from saleshub.store.tables import operator_actions

__all__ = ["Actor", "AuditEntry", "last_actors", "list_actions", "record_action"]

_A = operator_actions.c


@dataclass(frozen=True, slots=True)
class Actor:
    """The person behind an action: the provider's subject and the name it gave."""

    subject: str
    name: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded operator action."""

    action_id: int
    acted_at: datetime
    subject: str
    name: str
    action: str
    object_type: str
    object_id: str
    reason: str | None
    detail: dict[str, Any] = field(default_factory=dict)


def record_action(
    conn: Connection,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: str,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one action (in ``conn``'s transaction)."""
    conn.execute(
        insert(operator_actions).values(
            subject=actor.subject,
            name=actor.name,
            action=action,
            object_type=object_type,
            object_id=object_id,
            reason=reason,
            detail=detail or {},
        )
    )


def list_actions(
    conn: Connection,
    *,
    limit: int = 50,
    before: int | None = None,
    action: str | None = None,
    subject: str | None = None,
    object_id: str | None = None,
) -> list[AuditEntry]:
    """The newest actions first; ``before`` (an ``action_id``) pages back by key."""
    query = select(operator_actions).order_by(_A.action_id.desc()).limit(limit)
    if before is not None:
        query = query.where(_A.action_id < before)
    if action is not None:
        query = query.where(_A.action == action)
    if subject is not None:
        query = query.where(_A.subject == subject)
    if object_id is not None:
        query = query.where(_A.object_id == object_id)
    return [AuditEntry(**row._mapping) for row in conn.execute(query)]


def last_actors(conn: Connection, object_type: str, object_ids: Sequence[str]) -> dict[str, AuditEntry]:
    """The newest action on each of ``object_ids`` (of ``object_type``), by object id."""
    if not object_ids:
        return {}
    query = (
        select(operator_actions)
        .where(_A.object_type == object_type, _A.object_id.in_(list(object_ids)))
        .order_by(_A.object_id, _A.action_id.desc())
        .ext(distinct_on(_A.object_id))
    )
    return {row.object_id: AuditEntry(**row._mapping) for row in conn.execute(query)}
