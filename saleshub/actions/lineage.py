"""Field lineage as a person asks for it: masked by default, personal values only with a reason.

The operator API and the console serve the JSON of ``saleshub orders explain --json`` from
``order_lineage``. Personal values stay masked unless a steward (or an admin) asks to see them and
says why; that request is written to the audit trail (``orders.lineage.unmask``, on the order or
the event) before the values
are computed, so nobody sees them without a trace.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from saleshub.errors import InvalidRequestError, NotFoundError
from saleshub.stewards.lineage import RevisionCatalogs, explain_event, explain_version, find_order_id
from saleshub.store import queries
from saleshub.store.audit import Actor, record_action
from saleshub.store.failures import database_errors

__all__ = ["UNMASK_ACTION", "event_lineage", "order_lineage"]

#: The audit action of a lineage shown with its personal values.
UNMASK_ACTION = "orders.lineage.unmask"


def order_lineage(
    engine: Engine,
    catalogs: RevisionCatalogs,
    order: str,
    *,
    version: int | None = None,
    fields: Sequence[str] = (),
    unmask_reason: str | None = None,
    actor: Actor | None = None,
) -> dict[str, Any]:
    """The lineage JSON of ``order`` (hub id or ``SYSTEM:EXTERNAL_ID``) at ``version`` (default newest).

    With ``unmask_reason`` the personal values are shown and the request is audited as ``actor``'s
    (the caller checks the role); without it they are masked.
    """
    _check(unmask_reason, actor)
    with database_errors(), engine.connect() as conn:
        hub_order_id = find_order_id(conn, order)
    if hub_order_id is None:
        raise NotFoundError(f"no order {order}")
    show = _audit(engine, unmask_reason, actor, "order", str(hub_order_id), version, fields)
    with database_errors(), engine.connect() as conn:
        found = explain_version(
            conn,
            catalogs,
            hub_order_id,
            version=version,
            fields=fields,
            show_personal=show,
            reason=unmask_reason,
        )
    return found.as_json()


def event_lineage(
    engine: Engine,
    catalogs: RevisionCatalogs,
    event_id: uuid.UUID,
    *,
    fields: Sequence[str] = (),
    unmask_reason: str | None = None,
    actor: Actor | None = None,
) -> dict[str, Any]:
    """The lineage JSON of one event (``orders explain --event``): a quarantined one up to the field
    that failed, and why; masked unless ``unmask_reason`` is given (audited, as for an order)."""
    _check(unmask_reason, actor)
    with database_errors(), engine.connect() as conn:
        if queries.event(conn, event_id) is None:
            raise NotFoundError(f"no event {event_id}")
    show = _audit(engine, unmask_reason, actor, "event", str(event_id), None, fields)
    with database_errors(), engine.connect() as conn:
        found = explain_event(
            conn, catalogs, event_id, fields=fields, show_personal=show, reason=unmask_reason
        )
    return found.as_json()


def _check(unmask_reason: str | None, actor: Actor | None) -> None:
    if unmask_reason is not None and not unmask_reason.strip():
        raise InvalidRequestError("personal data is shown only with a reason")
    if unmask_reason is not None and actor is None:
        raise InvalidRequestError("personal data is shown only to a known person")


def _audit(
    engine: Engine,
    unmask_reason: str | None,
    actor: Actor | None,
    object_type: str,
    object_id: str,
    version: int | None,
    fields: Sequence[str],
) -> bool:
    """Write the request for personal values to the audit trail (before they are computed)."""
    if unmask_reason is None or actor is None:
        return False
    with database_errors(), engine.begin() as conn:
        record_action(
            conn,
            actor,
            UNMASK_ACTION,
            object_type,
            object_id,
            unmask_reason.strip(),
            {"version": version, "fields": list(fields)},
        )
    return True
