"""Privacy requests: erasure (right to be forgotten) and access (a subject's export), for the CLI and API.

``erase`` finds the subject (``saleshub.store.erasure``), and unless it is a dry run destroys its
data keys, records the erasure in the register and the operator-action trail (who, when, why, how
much — never the erased values) and puts a ``customer_erased`` event in the outbox, in one
transaction: either all of it happened or none did.

``export`` writes everything the hub holds about a subject as one JSON document: its orders whole
with every version, its events with their raw bodies opened, its linked customer records and links,
and the reconciliation findings about its orders.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from saleshub.errors import InvalidRequestError
from saleshub.publish.outbox import Outbox
from saleshub.store import queries
from saleshub.store.audit import Actor, record_action
from saleshub.store.erasure import Criteria, SubjectData, erase_subject, find_subject, record_erasure
from saleshub.store.failures import database_errors
from saleshub.store.outbox import write_outbox_rows
from saleshub.store.subject_export import subject_links_and_findings

__all__ = ["Criteria", "ErasureResult", "erase", "erase_and_announce", "export"]


@dataclass(frozen=True, slots=True)
class ErasureResult:
    """What an erasure found and (unless a dry run) destroyed."""

    dry_run: bool
    subject: SubjectData
    erasure_id: int | None
    erased_at: datetime | None


def _check(criteria: Criteria) -> None:
    if criteria.is_empty():
        raise InvalidRequestError(
            "name the subject: --email, --phone, --customer-ref or --linked-customer (several allowed)"
        )


def erase(
    engine: Engine, criteria: Criteria, *, actor: Actor, reason: str, dry_run: bool, outbox: Outbox
) -> ErasureResult:
    """Find the subject; unless ``dry_run``, erase it (see the module docstring)."""
    _check(criteria)
    cleaned = reason.strip()
    if not dry_run and not cleaned:
        raise InvalidRequestError("give the request's reference with --reason (e.g. the ticket number)")
    with database_errors(), engine.begin() as conn:
        subject = find_subject(conn, criteria)
        if dry_run or not (subject.orders or subject.unmapped_events):
            return ErasureResult(dry_run, subject, None, None)
        erasure_id, erased_at = erase_and_announce(
            conn, subject, outbox, by=actor.subject, reason=cleaned, criteria=criteria.kinds()
        )
        record_action(conn, actor, "privacy.erase", "erasure", str(erasure_id), cleaned, subject.summary())
    return ErasureResult(False, subject, erasure_id, erased_at)


def erase_and_announce(
    conn: Connection, subject: SubjectData, outbox: Outbox, *, by: str, reason: str, criteria: list[str]
) -> tuple[int, datetime]:
    """Destroy the subject's keys, register the erasure and announce it on Kafka, in ``conn``'s
    transaction (a person's request, or retention); the erasure's number and time."""
    erase_subject(conn, subject)
    erasure_id, erased_at = record_erasure(conn, by, reason, criteria, subject)
    if subject.orders:  # consumers received these orders; refused events reached none of them
        orders = [(o.source_system, o.external_order_id, o.hub_order_id) for o in subject.orders]
        erased = outbox.erasure_row(
            event_id=uuid.uuid4(), occurred_at=erased_at, erasure_id=erasure_id, orders=orders
        )
        write_outbox_rows(conn, [erased])
    return erasure_id, erased_at


def _body(body: bytes | None) -> dict[str, Any] | None:
    if body is None:
        return None
    try:
        return {"text": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(body).decode("ascii")}


def export(engine: Engine, criteria: Criteria, *, actor: Actor, reason: str) -> dict[str, Any]:
    """Everything the hub holds about the subject, as one JSON-ready document (art. 15 GDPR)."""
    _check(criteria)
    with database_errors(), engine.begin() as conn:
        subject = find_subject(conn, criteria)
        orders = []
        for found in subject.orders:
            order = queries.find_order(conn, hub_order_id=found.hub_order_id)
            if order is None:
                continue
            versions = queries.order_versions(conn, found.hub_order_id)
            orders.append(
                {
                    "hub_order_id": str(found.hub_order_id),
                    "source_system": found.source_system,
                    "external_order_id": found.external_order_id,
                    "erased": bool(order.erased),
                    "current": order.content,
                    "versions": [
                        {
                            "version_no": v.version_no,
                            "event_id": str(v.event_id),
                            "recorded_at": v.recorded_at.isoformat(),
                            "mapping": v.mapping,
                            "order": v.content,
                        }
                        for v in versions
                    ],
                }
            )
        events = []
        for event_id in subject.event_ids:
            row = queries.event(conn, event_id)
            if row is None:
                continue
            events.append(
                {
                    "event_id": str(row.event_id),
                    "received_at": row.received_at.isoformat(),
                    "source_system": row.source_system,
                    "transport": row.transport,
                    "status": row.status,
                    "hub_order_id": None if row.hub_order_id is None else str(row.hub_order_id),
                    "raw_body": _body(row.raw_body),
                    "raw_body_state": "erased"
                    if row.raw_body_erased
                    else ("purged" if row.raw_body_purged_at else "kept"),
                }
            )
        links = subject_links_and_findings(conn, subject.order_ids)
        record_action(
            conn,
            actor,
            "privacy.export",
            "subject",
            ",".join(criteria.kinds()),
            reason.strip() or None,
            subject.summary(),
        )
    events.sort(key=lambda e: (e["received_at"], e["event_id"]))
    return {
        "exported_at": datetime.now(UTC).isoformat(),
        "searched_by": criteria.kinds(),
        "summary": subject.summary(),
        "orders": orders,
        "events": events,
        **links,
    }
