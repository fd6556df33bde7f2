"""Finding a data subject's data, and erasing it by destroying its data keys (crypto-shredding).

A subject is found by what a privacy request names: an e-mail, a phone, a customer reference (the
blind index ``personal_index``, through the personal-data port) or a linked customer (a cluster of
``customer_records``). Their data is every order found, its versions and events, and every event
sharing its data key (also one quarantined before it was ever mapped, when it named the order).
Retention names closed orders directly: ``orders_subject`` gathers the same for given orders.

``erase_subject`` destroys those data keys in one transaction: raw bodies, personal fields and
outbox payloads they sealed are unreadable from the commit on, in this database and in every copy
taken afterwards, while the order facts (amounts, products, stores, dates, statuses) stay. It also
deletes the subject's blind-index entries, normalised customer records and links, and the values
of reconciliation differences about those orders, and marks the orders ``erased_at``. A later event
of such an order finds no data key and gets a new one: a new subject, never the erased one.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from saleshub.errors import InvalidRequestError
from saleshub.store.events import open_bodies_why
from saleshub.store.personal import personal_data

__all__ = [
    "Criteria",
    "SubjectData",
    "SubjectOrder",
    "erase_subject",
    "erasure_register",
    "find_subject",
    "normalised",
    "orders_subject",
    "record_erasure",
]


@dataclass(frozen=True, slots=True)
class Criteria:
    """What a request names (any combination; orders matching any are the subject's)."""

    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    customer_refs: tuple[str, ...] = ()
    linked_customers: tuple[int, ...] = ()
    orders: tuple[tuple[str, str], ...] = ()  # (system, external order id): an erasure applied again

    def kinds(self) -> list[str]:
        """The kinds searched by, for the erasure register (never the values)."""
        named = {
            "email": self.emails,
            "phone": self.phones,
            "customer_ref": self.customer_refs,
            "linked_customer": self.linked_customers,
            "order": self.orders,
        }
        return [kind for kind, values in named.items() if values]

    def is_empty(self) -> bool:
        """Whether nothing was named."""
        return not self.kinds()


@dataclass(frozen=True, slots=True)
class SubjectOrder:
    """One order of the subject."""

    hub_order_id: uuid.UUID
    source_system: str
    external_order_id: str
    sales_channel: str
    status: str
    erased_at: datetime | None


@dataclass(slots=True)
class SubjectData:
    """Everything of a subject the hub holds, by reference (no personal value)."""

    orders: list[SubjectOrder] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)  # per system
    event_ids: list[uuid.UUID] = field(default_factory=list)
    key_ids: list[uuid.UUID] = field(default_factory=list)
    linked_records: int = 0
    clusters: list[int] = field(default_factory=list)
    matched: dict[uuid.UUID, list[str]] = field(default_factory=dict)  # order → kinds that found it
    linked_customer: dict[uuid.UUID, int] = field(default_factory=dict)  # order → its cluster, if linked
    unmapped_events: dict[uuid.UUID, list[str]] = field(default_factory=dict)  # no order; by content

    @property
    def order_ids(self) -> list[uuid.UUID]:
        """The hub ids of the subject's orders."""
        return [order.hub_order_id for order in self.orders]

    def summary(self) -> dict[str, Any]:
        """Counts and references, for the dry run, the register and the Kafka event."""
        return {
            "orders": len(self.orders),
            "orders_already_erased": sum(1 for o in self.orders if o.erased_at is not None),
            "events": sum(self.events.values()),
            "events_by_system": dict(sorted(self.events.items())),
            "events_without_order": len(self.unmapped_events),
            "systems": sorted({o.source_system for o in self.orders}),
            "data_keys": len(self.key_ids),
            "linked_records": self.linked_records,
            "linked_customers": self.clusters,
        }


_BY_DIGEST = text(
    "SELECT DISTINCT hub_order_id, kind FROM personal_index p JOIN unnest(CAST(:kinds AS text[]), "
    "CAST(:digests AS bytea[])) AS w(kind, digest) USING (kind, digest)"
)
# Events refused before any order was stored for them: their bodies are searched for the values. The
# open ones only (the partial index of the open quarantine serves it): a refused event replayed into
# an order shares that order's data key, found with it.
_UNMAPPED = text(
    "SELECT event_id, source_system, raw_body AS body, data_key_id AS body_key, body_sha256 AS body_sha "
    "FROM sales_system_integration_events WHERE hub_order_id IS NULL AND raw_body IS NOT NULL "
    "AND status IN ('quarantined', 'failed') AND superseded_by IS NULL AND replay_of IS NULL "
    "AND event_id > :after "
    "ORDER BY event_id LIMIT :limit"
)
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SEPARATORS = re.compile(r"[\s().\-/]")
_BY_REFERENCE = text(
    "SELECT o.hub_order_id FROM service_orders o JOIN unnest(CAST(:systems AS text[]), "
    "CAST(:ids AS text[])) AS w(source_system, external_order_id) USING (source_system, external_order_id)"
)
_REGISTER_LIST = text(
    "SELECT erasure_id, erased_at, subject, reason, criteria, orders, events, data_keys, detail "
    "FROM privacy_erasures ORDER BY erasure_id"
)
_BY_CLUSTER = text(
    "SELECT DISTINCT hub_order_id FROM customer_records WHERE cluster_id = ANY(CAST(:clusters AS bigint[]))"
)
_ORDERS = text(
    "SELECT hub_order_id, source_system, external_order_id, sales_channel, status, erased_at, data_key_id "
    "FROM service_orders WHERE hub_order_id = ANY(CAST(:ids AS uuid[])) "
    "ORDER BY source_system, external_order_id"
)
_EVENTS = text(
    "SELECT e.event_id, e.source_system, e.data_key_id FROM sales_system_integration_events e "
    "WHERE e.hub_order_id = ANY(CAST(:ids AS uuid[])) OR e.data_key_id = ANY(CAST(:keys AS uuid[]))"
)
_VERSION_KEYS = text(
    "SELECT DISTINCT data_key_id FROM service_order_versions "
    "WHERE hub_order_id = ANY(CAST(:ids AS uuid[])) AND data_key_id IS NOT NULL"
)
_PAIR_KEYS = text(
    "SELECT key_id FROM order_data_keys m JOIN unnest(CAST(:systems AS text[]), CAST(:keys AS text[])) "
    "AS w(source_system, order_key) USING (source_system, order_key)"
)
_RECORDS = text(
    "SELECT hub_order_id, cluster_id FROM customer_records WHERE hub_order_id = ANY(CAST(:ids AS uuid[]))"
)


def normalised(criteria: Criteria) -> list[tuple[str, str]]:
    """The values as the blind index holds them; ``InvalidRequestError`` for one that cannot match."""
    named: list[tuple[str, str]] = []
    for value in criteria.emails:
        email = value.strip().lower()
        if not _EMAIL.match(email):
            raise InvalidRequestError(f"{value!r} is not an e-mail address (name@domain.tld)")
        named.append(("email", email))
    for value in criteria.phones:
        phone = _SEPARATORS.sub("", value.strip())
        if not _E164.match(phone):
            raise InvalidRequestError(
                f"{value!r} is not a phone number in E.164, as the hub stores phones: give the "
                "country code with +, e.g. +34612999001"
            )
        named.append(("phone", phone))
    for value in criteria.customer_refs:
        if not value.strip():
            raise InvalidRequestError("a customer reference is empty")
        named.append(("customer_ref", value.strip()))
    return named


def find_subject(conn: Connection, criteria: Criteria) -> SubjectData:
    """The subject's orders, events, data keys and linked records (nothing is changed).

    Orders are found through the blind index and the linked customers; events refused before any
    order was stored for them (quarantined at intake or at mapping) by searching their opened bodies
    for the values given.
    """
    named = normalised(criteria)
    matched: dict[uuid.UUID, set[str]] = {}
    if named:
        digests = personal_data(conn).index_digests(conn, named)
        rows = conn.execute(_BY_DIGEST, {"kinds": [kind for kind, _ in named], "digests": digests})
        for order_id, kind in rows:
            matched.setdefault(order_id, set()).add(kind)
    if criteria.linked_customers:
        for order_id in conn.execute(_BY_CLUSTER, {"clusters": list(criteria.linked_customers)}).scalars():
            matched.setdefault(order_id, set()).add("linked_customer")
    if criteria.orders:
        rows = conn.execute(
            _BY_REFERENCE,
            {"systems": [s for s, _ in criteria.orders], "ids": [o for _, o in criteria.orders]},
        )
        for order_id in rows.scalars():
            matched.setdefault(order_id, set()).add("order")
    found = orders_subject(conn, matched)
    found.matched = {order_id: sorted(kinds) for order_id, kinds in matched.items()}
    if named:
        _add_unmapped_events(conn, found, named)
    return found


def _needles(named: Sequence[tuple[str, str]]) -> list[tuple[str, re.Pattern[str]]]:
    """What to look for in a body, per value: the e-mail and reference as written, a phone's digits
    with or without its country code (sources write national numbers with spaces and dashes)."""
    found = []
    for kind, value in named:
        if kind == "phone":
            digits = value.lstrip("+")
            tails = {digits[cut:] for cut in range(4) if len(digits) - cut >= 8}
            found.append((kind, re.compile("(?<![0-9])(" + "|".join(sorted(tails)) + ")(?![0-9])")))
        else:
            found.append(
                (kind, re.compile("(?<![\\w.@-])" + re.escape(value) + "(?![\\w@-])", re.IGNORECASE))
            )
    return found


def _add_unmapped_events(conn: Connection, found: SubjectData, named: Sequence[tuple[str, str]]) -> None:
    needles = _needles(named)
    keys = set(found.key_ids)
    after = uuid.UUID(int=0)
    while True:
        rows = conn.execute(_UNMAPPED, {"after": after, "limit": 1000}).all()
        if not rows:
            break
        after = rows[-1].event_id
        for row, body in zip(rows, open_bodies_why(conn, rows), strict=True):
            if body[0] is None or row.event_id in found.event_ids:
                continue
            text_ = body[0].decode("utf-8", "replace")
            compact = _SEPARATORS.sub("", text_)
            kinds = sorted({k for k, n in needles if n.search(compact if k == "phone" else text_)})
            if not kinds:
                continue
            found.unmapped_events[row.event_id] = kinds
            found.event_ids.append(row.event_id)
            found.events[row.source_system] = found.events.get(row.source_system, 0) + 1
            if row.body_key is not None:
                keys.add(row.body_key)
    found.key_ids = sorted(keys)


def orders_subject(conn: Connection, order_ids: Collection[uuid.UUID]) -> SubjectData:
    """The orders' versions, events, data keys and linked records, as one subject (nothing changed).

    ``find_subject`` finds a person's orders first; retention names closed orders directly.
    """
    found = SubjectData()
    if not order_ids:
        return found
    ids = list(order_ids)
    rows = conn.execute(_ORDERS, {"ids": ids}).all()
    found.orders = [SubjectOrder(*row[:6]) for row in rows]
    keys = {row.data_key_id for row in rows if row.data_key_id is not None}
    keys.update(conn.execute(_VERSION_KEYS, {"ids": ids}).scalars())
    keys.update(
        conn.execute(
            _PAIR_KEYS,
            {
                "systems": [o.source_system for o in found.orders],
                "keys": [o.external_order_id for o in found.orders],
            },
        ).scalars()
    )
    events = conn.execute(_EVENTS, {"ids": ids, "keys": list(keys)}).all()
    for event in events:
        found.events[event.source_system] = found.events.get(event.source_system, 0) + 1
        if event.data_key_id is not None:
            keys.add(event.data_key_id)
    found.event_ids = [event.event_id for event in events]
    found.key_ids = sorted(keys)
    records = conn.execute(_RECORDS, {"ids": ids}).all()
    found.linked_records = len(records)
    found.linked_customer = {row.hub_order_id: row.cluster_id for row in records}
    found.clusters = sorted(set(found.linked_customer.values()))
    return found


_ERASE = (
    "DELETE FROM data_keys WHERE key_id = ANY(CAST(:keys AS uuid[]))",
    "DELETE FROM order_data_keys WHERE key_id = ANY(CAST(:keys AS uuid[]))",
    "DELETE FROM personal_index WHERE hub_order_id = ANY(CAST(:ids AS uuid[]))",
    "DELETE FROM customer_links WHERE record_l IN (SELECT record_id FROM customer_records "
    "  WHERE hub_order_id = ANY(CAST(:ids AS uuid[]))) OR record_r IN (SELECT record_id "
    "  FROM customer_records WHERE hub_order_id = ANY(CAST(:ids AS uuid[])))",
    "DELETE FROM customer_records WHERE hub_order_id = ANY(CAST(:ids AS uuid[]))",
    "UPDATE reconciliation_findings SET field_differences = NULL "
    "WHERE hub_order_id = ANY(CAST(:ids AS uuid[])) AND field_differences IS NOT NULL",
    "UPDATE cross_system_conflicts SET differences = '[]'::jsonb "
    "WHERE left_hub_order_id = ANY(CAST(:ids AS uuid[])) OR right_hub_order_id = ANY(CAST(:ids AS uuid[]))",
    "UPDATE service_orders SET erased_at = coalesce(erased_at, now()) "
    "WHERE hub_order_id = ANY(CAST(:ids AS uuid[]))",
)


def erase_subject(conn: Connection, subject: SubjectData) -> None:
    """Destroy the subject's data keys and derived personal data, in ``conn``'s transaction."""
    params = {"keys": subject.key_ids, "ids": subject.order_ids}
    for statement in _ERASE:
        conn.execute(text(statement), params)
    personal_data(conn).forget(subject.key_ids)


_REGISTER = text(
    "INSERT INTO privacy_erasures (subject, reason, criteria, orders, events, data_keys, detail) "
    "VALUES (:subject, :reason, CAST(:criteria AS jsonb), :orders, :events, :keys, CAST(:detail AS jsonb)) "
    "RETURNING erasure_id, erased_at"
)


def record_erasure(
    conn: Connection, actor: str, reason: str, kinds: Sequence[str], subject: SubjectData
) -> tuple[int, datetime]:
    """The erasure register's row: who, why, searched by what kinds, how much (never the values)."""
    summary = subject.summary()
    row = conn.execute(
        _REGISTER,
        {
            "subject": actor,
            "reason": reason,
            "criteria": json.dumps(list(kinds)),
            "orders": summary["orders"],
            "events": summary["events"],
            "keys": summary["data_keys"],
            "detail": json.dumps(
                {
                    "systems": summary["systems"],
                    "events_by_system": summary["events_by_system"],
                    "linked_records": summary["linked_records"],
                    "orders": [
                        {
                            "system": o.source_system,
                            "external_order_id": o.external_order_id,
                            "hub_order_id": str(o.hub_order_id),
                        }
                        for o in subject.orders
                    ],
                }
            ),
        },
    ).one()
    return int(row.erasure_id), row.erased_at


def erasure_register(conn: Connection) -> list[dict[str, Any]]:
    """Every erasure recorded, oldest first (who, when, why, counts, the orders by reference)."""
    return [dict(row._mapping) for row in conn.execute(_REGISTER_LIST)]
