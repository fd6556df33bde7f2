"""Sealing and verifying the tamper-evident audit trail (integration events and operator actions).

**Sealing.** Time is cut into UTC hours (``PERIOD``). Once an hour has ended and ``GRACE`` has
passed (for transactions still in flight that stamped their rows inside the hour), ``seal_ended``
seals it: it reads the hour's events (by ``received_at``) and operator actions (by ``acted_at``),
hashes each row's immutable columns into a leaf (``saleshub.store.seals`` names them), builds a
Merkle root per trail, and stores one ``audit_seals`` row with both roots, the counts, the ordered
``(id, leaf)`` lists (compressed) and the chain hash linking it to the seal of the hour before
(``saleshub.actions.audit_hashing``). Every hour from the one of the earliest row on is sealed,
empty or not, so the seals form one unbroken chain. Each seal is published in its own transaction:
an ``audit_sealed`` event in the outbox (Kafka) and, after the commit, an INFO log line with its
root and chain hash. Nothing is added to intake's path: sealing reads committed rows afterwards, and
sealers serialise on an advisory lock of their own, so any number may run (``saleshub serve`` every
``SEAL_EVERY``, ``saleshub audit seal`` by hand or from cron).

**Verifying.** ``verify`` recomputes every seal (from ``since`` on): its chain hash from its own
fields and the seal before, its roots from its leaf lists, and the leaves from the rows now in the
tables, and lists each difference with where it is: a row changed, deleted or inserted (its table,
id and hour), a seal altered, a seal missing, the chain broken, rows older than the first seal, or
an ended hour holding rows still without a seal once every sealer has had its turn
(``SEALING_OVERDUE``: its seal was deleted, or no sealer runs). A seal rewritten with the whole chain
after it is caught only by comparing chain hashes with the published ones (``anchors``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Connection, Engine

from saleshub.actions.audit_hashing import (
    GENESIS,
    LeafId,
    chain_hash,
    leaf_hash,
    merkle_root,
    pack_leaves,
    period_root,
    unpack_leaves,
)
from saleshub.publish.outbox import Outbox
from saleshub.store.failures import database_errors
from saleshub.store.outbox import outbox_holds, write_outbox_rows
from saleshub.store.seals import (
    SealRecord,
    action_rows,
    actions_before,
    earliest_row,
    event_rows,
    events_before,
    insert_seal,
    last_seal,
    lock_sealing,
    rows_per_hour,
    seals_from,
)

__all__ = [
    "ACTIONS",
    "EVENTS",
    "GRACE",
    "PERIOD",
    "SEALING_OVERDUE",
    "SEAL_EVERY",
    "Finding",
    "Outlook",
    "Sealed",
    "Verification",
    "period_of",
    "schedule_sealing",
    "seal_ended",
    "sealing_outlook",
    "verify",
]

log = logging.getLogger(__name__)

#: The sealed period: one UTC hour.
PERIOD = timedelta(hours=1)
#: How long after an hour ends it is sealed: transactions that stamped a row inside the hour have
#: committed by then (a row committed later still is reported as inserted after its seal).
GRACE = timedelta(minutes=10)
#: How often ``saleshub serve`` looks for ended hours to seal.
SEAL_EVERY = timedelta(minutes=5)
#: How long after an hour's grace every sealer has had its turn: 24 looks of ``saleshub serve``, 8 runs
#: of the chart's 15-minute CronJob. An ended hour holding rows still without a seal after ``GRACE`` +
#: this is a finding (its seal deleted, or no sealer runs); before, it is only counted, so that rows of
#: the last hours on a hub whose sealer has not run yet raise no false alarm.
SEALING_OVERDUE = timedelta(hours=2)
#: The two trails, as named in findings (their table names).
EVENTS = "sales_system_integration_events"
ACTIONS = "operator_actions"
_EXECUTOR = "audit-seal"
# How many rows older than the first seal a verification names, of each table.
_NAMED_BEFORE = 20
# How many overdue unsealed hours a verification names (a day's worth), oldest first.
_NAMED_UNSEALED = 24


def period_of(at: datetime) -> datetime:
    """The start of the UTC hour holding ``at``."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _label(start: datetime) -> str:
    return f"{start.astimezone(UTC):%Y-%m-%d %H:00} UTC"


@dataclass(frozen=True, slots=True)
class Sealed:
    """One seal just made."""

    period_start: datetime
    period_end: datetime
    events_count: int
    actions_count: int
    root: bytes
    chain: bytes


def _event_leaves(conn: Connection, start: datetime, end: datetime) -> list[tuple[LeafId, bytes]]:
    """The events' ``(event id, leaf)`` of ``[start, end)``, by id (a UUID's bytes, as PostgreSQL)."""
    leaves: list[tuple[uuid.UUID, bytes]] = [
        (row["event_id"], leaf_hash(EVENTS, row)) for row in event_rows(conn, start, end)
    ]
    leaves.sort(key=lambda pair: pair[0].bytes)
    return list(leaves)


def _action_leaves(conn: Connection, start: datetime, end: datetime) -> list[tuple[LeafId, bytes]]:
    """The actions' ``(action id, leaf)`` of ``[start, end)``, by id."""
    leaves: list[tuple[int, bytes]] = [
        (row["action_id"], leaf_hash(ACTIONS, row)) for row in action_rows(conn, start, end)
    ]
    leaves.sort()
    return list(leaves)


class _Trail(NamedTuple):
    """One sealed table: its name, what a row is called, the seal's column prefix, how to read it."""

    table: str
    noun: str
    column: str
    uuids: bool
    read: Callable[[Connection, datetime, datetime], list[tuple[LeafId, bytes]]]


_TRAILS = (
    _Trail(EVENTS, "event", "events", True, _event_leaves),
    _Trail(ACTIONS, "action", "actions", False, _action_leaves),
)


def _next_to_seal(conn: Connection) -> tuple[datetime, bytes] | None:
    """The start of the next hour to seal and the chain hash it follows; ``None`` before any row."""
    last = last_seal(conn)
    if last is not None:
        return last.period_end, last.chain
    earliest = earliest_row(conn)
    return None if earliest is None else (period_of(earliest), GENESIS)


def _seal_next(conn: Connection, outbox: Outbox, limit: datetime) -> Sealed | None:
    """Seal the hour after the last seal if it ended by ``limit`` (in ``conn``'s transaction)."""
    lock_sealing(conn)
    following = _next_to_seal(conn)
    if following is None:
        return None
    start, previous = following
    end = start + PERIOD
    if end > limit:
        return None
    events, actions = _event_leaves(conn, start, end), _action_leaves(conn, start, end)
    events_root = merkle_root([leaf for _, leaf in events])
    actions_root = merkle_root([leaf for _, leaf in actions])
    root = period_root(events_root, actions_root)
    chain = chain_hash(previous, root, start, end, len(events), len(actions))
    sealed_at = datetime.now(UTC)
    insert_seal(
        conn,
        SealRecord(
            period_start=start,
            period_end=end,
            events_count=len(events),
            events_root=events_root,
            events_leaves=pack_leaves(events),
            actions_count=len(actions),
            actions_root=actions_root,
            actions_leaves=pack_leaves(actions),
            root=root,
            previous_chain=previous,
            chain=chain,
            sealed_at=sealed_at,
        ),
    )
    row = outbox.seal_row(
        sealed_at=sealed_at,
        period_start=start,
        period_end=end,
        events_count=len(events),
        events_root=events_root,
        actions_count=len(actions),
        actions_root=actions_root,
        root=root,
        previous_chain=previous,
        chain=chain,
    )
    # Sealing rows again after their seals were deleted gives the same chain, so the same announcement:
    # it was published once already.
    if not outbox_holds(conn, row["event_id"]):
        write_outbox_rows(conn, [row])
    return Sealed(start, end, len(events), len(actions), root, chain)


def seal_ended(
    engine: Engine,
    outbox: Outbox,
    *,
    until: datetime | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    stop: threading.Event | None = None,
) -> list[Sealed]:
    """Seal every unsealed hour that ended ``GRACE`` ago (and by ``until``), oldest first; idempotent.

    One transaction per hour, so a long backlog is resumable (and ``stop`` ends it between two
    hours); each seal is logged once committed.
    """
    limit = now() - GRACE
    if until is not None:
        limit = min(limit, until)
    made: list[Sealed] = []
    while stop is None or not stop.is_set():
        with database_errors(), engine.begin() as conn:
            sealed = _seal_next(conn, outbox, limit)
        if sealed is None:
            return made
        log.info(
            "audit trail sealed: %s, %d events, %d operator actions, root %s, chain %s",
            _label(sealed.period_start),
            sealed.events_count,
            sealed.actions_count,
            sealed.root.hex(),
            sealed.chain.hex(),
        )
        made.append(sealed)
    return made


@dataclass(frozen=True, slots=True)
class Outlook:
    """What a sealing run left: the next hour to seal, and why it is not sealed yet (``str``)."""

    next_hour: datetime | None  # None: no event or operator action recorded yet
    now: datetime
    until: datetime | None = None

    def __str__(self) -> str:
        if self.next_hour is None:
            return "no event or operator action recorded yet"
        end = (self.next_hour + PERIOD).astimezone(UTC)
        if self.until is not None and end > self.until:
            return f"every hour ending by {self.until.astimezone(UTC):%Y-%m-%d %H:%M} UTC is sealed"
        if end <= self.now < end + GRACE:
            minutes = int(GRACE.total_seconds() // 60)
            return (
                f"{_label(self.next_hour)} ended at {end:%H:%M} UTC and waits for the {minutes}-minute "
                f"grace: sealable from {end + GRACE:%H:%M} UTC"
            )
        if end + GRACE <= self.now:
            return f"{_label(self.next_hour)} is sealable but was not sealed (the run was stopped)"
        return "every ended hour is sealed"


def sealing_outlook(engine: Engine, *, now: datetime, until: datetime | None = None) -> Outlook:
    """The next hour to seal as of ``now`` (after ``seal_ended`` with the same ``now`` and ``until``)."""
    with database_errors(), engine.connect() as conn:
        following = _next_to_seal(conn)
    return Outlook(None if following is None else following[0], now.astimezone(UTC), until)


def schedule_sealing(
    engine: Engine, outbox: Outbox, scheduler: BaseScheduler, stop: threading.Event | None = None
) -> None:
    """Run ``seal_ended`` on ``scheduler`` every ``SEAL_EVERY`` (first run now), in an executor of its
    own so that a long backlog of hours never holds back a poll."""
    scheduler.add_executor(ThreadPoolExecutor(1), alias=_EXECUTOR)
    scheduler.add_job(
        seal_ended,
        IntervalTrigger(seconds=SEAL_EVERY.total_seconds()),
        args=[engine, outbox],
        kwargs={"stop": stop},
        executor=_EXECUTOR,
        id="audit-seal",
        name="audit trail sealing",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference between the audit trail and its seals, with where it is."""

    where: str  # the hour, e.g. "2026-12-07 05:00 UTC", or "before the first seal"
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class Verification:
    """What ``verify`` found: the findings and what it covered."""

    findings: list[Finding] = field(default_factory=list)
    seals: int = 0
    first: datetime | None = None
    last: datetime | None = None
    events: int = 0
    actions: int = 0
    last_chain: bytes | None = None
    #: Ended hours (past their grace) after the last seal, or from the earliest row's hour when no
    #: seal exists: each needs a seal, empty or not.
    unsealed_hours: int = 0

    @property
    def intact(self) -> bool:
        """No finding."""
        return not self.findings


def _compare(
    found: list[Finding],
    where: str,
    table: str,
    noun: str,
    sealed: Sequence[tuple[LeafId, bytes]],
    current: Sequence[tuple[LeafId, bytes]],
) -> None:
    before, now = dict(sealed), dict(current)
    for key, leaf in sealed:
        if key not in now:
            found.append(Finding(where, f"{table}: {noun} {key} deleted"))
        elif now[key] != leaf:
            found.append(Finding(where, f"{table}: {noun} {key} changed"))
    for key, _ in current:
        if key not in before:
            found.append(Finding(where, f"{table}: {noun} {key} inserted after the hour was sealed"))


def _check_seal(conn: Connection, seal: SealRecord, found: list[Finding]) -> None:
    where = _label(seal.period_start)
    recomputed = chain_hash(
        seal.previous_chain,
        seal.root,
        seal.period_start,
        seal.period_end,
        seal.events_count,
        seal.actions_count,
    )
    if recomputed != seal.chain:
        found.append(Finding(where, "seal altered: its chain hash does not match its content"))
    if period_root(seal.events_root, seal.actions_root) != seal.root:
        found.append(Finding(where, "seal altered: its root does not match its two trail roots"))
    for trail in _TRAILS:
        table, root = trail.table, getattr(seal, f"{trail.column}_root")
        current = trail.read(conn, seal.period_start, seal.period_end)
        try:
            sealed = unpack_leaves(getattr(seal, f"{trail.column}_leaves"), uuids=trail.uuids)
        except ValueError as exc:
            sealed = None
            found.append(Finding(where, f"seal altered: its {table} leaf list is damaged ({exc})"))
        count = getattr(seal, f"{trail.column}_count")
        if sealed is not None and merkle_root([leaf for _, leaf in sealed]) != root:
            found.append(Finding(where, f"seal altered: its {table} leaf list does not match its root"))
            sealed = None
        elif sealed is not None and len(sealed) != count:
            # The list still matches the root, so it still names the rows that differ.
            found.append(
                Finding(
                    where,
                    f"seal altered: its {table} count ({count}) does not match its leaf list "
                    f"({len(sealed)} rows)",
                )
            )
        if sealed is not None:
            _compare(found, where, table, trail.noun, sealed, current)
        elif merkle_root([leaf for _, leaf in current]) != root:
            found.append(
                Finding(where, f"{table}: the rows differ from the seal's root (which row is unknown)")
            )


def _check_link(previous: SealRecord | None, seal: SealRecord, found: list[Finding]) -> None:
    where = _label(seal.period_start)
    if previous is None:
        if seal.previous_chain != GENESIS:
            found.append(Finding(where, "chain broken: the seal before this one (the first) is missing"))
        return
    if seal.period_start != previous.period_end:
        found.append(
            Finding(
                where,
                f"seals missing: no seal for {_label(previous.period_end)} to {_label(seal.period_start)} "
                "(deleted seals)",
            )
        )
    if seal.previous_chain != previous.chain:
        found.append(
            Finding(
                where, f"chain broken: this seal does not follow the seal of {_label(previous.period_start)}"
            )
        )


def _check_before(conn: Connection, first: datetime, found: list[Finding]) -> None:
    events = events_before(conn, first, _NAMED_BEFORE + 1)
    actions = actions_before(conn, first, _NAMED_BEFORE + 1)
    for table, rows in ((EVENTS, events), (ACTIONS, actions)):
        if len(rows) > _NAMED_BEFORE:
            found.append(
                Finding("before the first seal", f"{table}: more rows than the {_NAMED_BEFORE} named")
            )
    for event_id, at in events[:_NAMED_BEFORE]:
        found.append(
            Finding(
                f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
                f"{EVENTS}: event {event_id} inserted before the first seal",
            )
        )
    for action_id, at in actions[:_NAMED_BEFORE]:
        found.append(
            Finding(
                f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
                f"{ACTIONS}: action {action_id} inserted before the first seal",
            )
        )


def _check_unsealed(
    conn: Connection, sealed_to: datetime | None, since: datetime | None, now: datetime, result: Verification
) -> None:
    """Count the ended hours after ``sealed_to`` (the last seal's end; ``None``: no seal) and report
    those holding rows whose sealing is overdue (``SEALING_OVERDUE`` after their grace)."""
    if sealed_to is None:
        earliest = earliest_row(conn)
        if earliest is None:
            return
        sealed_to = period_of(earliest)
    start = sealed_to if since is None else max(sealed_to, period_of(since))
    ended = period_of(now - GRACE)  # the hours ending by then are past their grace
    if ended <= start:
        return
    result.unsealed_hours = int((ended - start) / PERIOD)
    overdue = [
        (hour, counts)
        for hour, counts in sorted(rows_per_hour(conn, start, ended).items())
        if hour + PERIOD + GRACE + SEALING_OVERDUE < now
    ]
    for hour, (events, actions) in overdue[:_NAMED_UNSEALED]:
        result.findings.append(
            Finding(
                _label(hour),
                f"not sealed, although sealing is overdue: {events} events, {actions} operator actions "
                "(seals deleted, or no sealer runs)",
            )
        )
    if len(overdue) > _NAMED_UNSEALED:
        result.findings.append(
            Finding(
                f"{_label(overdue[_NAMED_UNSEALED][0])} on",
                f"{len(overdue) - _NAMED_UNSEALED} more hours holding rows not sealed, although sealing is "
                "overdue",
            )
        )


def verify(
    engine: Engine,
    *,
    since: datetime | None = None,
    anchors: Sequence[bytes] = (),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Verification:
    """Check every seal ending after ``since`` (all by default) against the rows and the chain.

    ``anchors`` are chain hashes published earlier (log lines, Kafka): each must be a stored seal's.
    Reads one snapshot (repeatable read), so rows written meanwhile do not show as differences.
    """
    result = Verification()
    seen_chains: set[bytes] = set()
    with database_errors(), engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        previous: SealRecord | None = None
        for seal in seals_from(conn, since):
            seen_chains.add(seal.chain)
            if since is not None and seal.period_end <= since:
                previous = seal  # only the link to the first checked seal
                continue
            if result.seals == 0 and previous is None and since is None:
                _check_before(conn, seal.period_start, result.findings)
            _check_link(previous, seal, result.findings)
            _check_seal(conn, seal, result.findings)
            result.seals += 1
            result.first = result.first or seal.period_start
            result.last, result.last_chain = seal.period_start, seal.chain
            result.events += seal.events_count
            result.actions += seal.actions_count
            previous = seal
        _check_unsealed(conn, None if previous is None else previous.period_end, since, now(), result)
    for anchor in anchors:
        if anchor not in seen_chains:
            result.findings.append(
                Finding(
                    "published chain",
                    f"{anchor.hex()} is the chain hash of no stored seal (seals rewritten?)",
                )
            )
    return result
