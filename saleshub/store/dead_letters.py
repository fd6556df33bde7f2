"""Kafka dead letters: which inbound records are on the dead-letter topic, and where.

The order-event consumer asks which of a round's rejected events were dead-lettered before (a
round consumed again after a retry or a restart) and sends only the others; it writes a row for
each record the dead-letter topic acknowledged, in a transaction of its own after the
acknowledgement. A consumer killed between the two may send that record once more; nothing else does.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert

from saleshub.store.tables import kafka_dead_letters

__all__ = ["DeadLetter", "already_dead_lettered", "dead_letter_offsets", "write_dead_letters"]

_D = kafka_dead_letters.c


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One inbound record on the dead-letter topic: the event keeping its bytes, whence, whither."""

    event_id: uuid.UUID
    source_topic: str
    source_partition: int
    source_offset: int
    form: str
    topic: str
    kafka_partition: int
    kafka_offset: int


def already_dead_lettered(conn: Connection, event_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """The events among ``event_ids`` whose record is on the dead-letter topic already."""
    if not event_ids:
        return set()
    return set(conn.execute(select(_D.event_id).where(_D.event_id.in_(list(event_ids)))).scalars())


def write_dead_letters(conn: Connection, letters: Collection[DeadLetter]) -> None:
    """Note records the dead-letter topic acknowledged (a row already there stays as it is)."""
    if not letters:
        return
    rows = [
        {
            "event_id": d.event_id,
            "source_topic": d.source_topic,
            "source_partition": d.source_partition,
            "source_offset": d.source_offset,
            "form": d.form,
            "topic": d.topic,
            "kafka_partition": d.kafka_partition,
            "kafka_offset": d.kafka_offset,
        }
        for d in letters
    ]
    conn.execute(insert(kafka_dead_letters).on_conflict_do_nothing(index_elements=["event_id"]), rows)


def dead_letter_offsets(conn: Connection, topic: str) -> dict[int, int]:
    """Per partition of the dead-letter ``topic``, the highest offset the broker acknowledged."""
    query = (
        select(_D.kafka_partition, func.max(_D.kafka_offset))
        .where(_D.topic == topic)
        .group_by(_D.kafka_partition)
    )
    return {int(partition): int(offset) for partition, offset in conn.execute(query)}
