"""Healing a run: what the hub lacks or holds too old is fetched from the source again and recorded.

After a run, ``heal`` reads the window from the source's API once more (``ApiManifestReader.records``,
the pollers' client) and records every record whose order the run found ``missing_in_hub`` or
``hub_stale`` through the hub's one record path: ``admit`` then ``Recorder.record_batch``, transport
``poll``, built exactly as the poller builds its events, so a record has the idempotency key the poller
gives it and one the hub already holds (recorded but not yet processed, say) is recorded nothing the
second time. A processor then maps the recorded events like any others.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from reconciliation.api import ApiManifestReader, ApiRecord
from reconciliation.model import Kind, Window
from saleshub.receive.intake import InboundEvent, admit
from saleshub.receive.recorder import Item, Recorder
from saleshub.store import findings
from saleshub.store.failures import database_errors

__all__ = ["HEALED_KINDS", "HealResult", "heal"]

#: The findings a re-fetch can cure.
HEALED_KINDS = (Kind.MISSING_IN_HUB, Kind.HUB_STALE)
_BATCH = 200


@dataclass(slots=True)
class HealResult:
    """What healing did: orders wanted, records recorded, already held, refused, not found at the source."""

    wanted: int = 0
    recorded: int = 0
    repeated: int = 0
    refused: int = 0
    not_found: list[str] = field(default_factory=list)


def _wanted(engine: Engine, run_id: uuid.UUID) -> set[str]:
    with database_errors(), engine.connect() as conn:
        return {
            str(finding["external_order_id"])
            for finding in findings.findings(conn, run_id)
            if finding["kind"] in HEALED_KINDS
        }


def _record(
    recorder: Recorder,
    reader: ApiManifestReader,
    batch: Iterable[ApiRecord],
    run_id: uuid.UUID,
    result: HealResult,
) -> None:
    received_at = datetime.now(UTC)
    headers = {"reconcile-run": str(run_id)}
    items: list[Item] = []
    for found in batch:
        event = InboundEvent(
            reader.system,
            "poll",
            found.record.body,
            found.record.content_type,
            headers=headers,
            received_at=received_at,
        )
        items.append((event, admit(event, reader.adapter)))
    for receipt in recorder.record_batch(items):
        if receipt.repeated:
            result.repeated += 1
        elif receipt.refused:
            result.refused += 1
        else:
            result.recorded += 1


def heal(
    engine: Engine, recorder: Recorder, reader: ApiManifestReader, run_id: uuid.UUID, window: Window
) -> HealResult:
    """Record again, from the source, the orders run ``run_id`` found missing in or stale in the hub."""
    wanted = _wanted(engine, run_id)
    result = HealResult(wanted=len(wanted))
    if not wanted:
        return result
    found: set[str] = set()
    batch: list[ApiRecord] = []
    for item in reader.records(window):
        if item.key is None or item.key not in wanted:
            continue
        found.add(item.key)
        batch.append(item)
        if len(batch) >= _BATCH:
            _record(recorder, reader, batch, run_id, result)
            batch.clear()
    if batch:
        _record(recorder, reader, batch, run_id, result)
    result.not_found = sorted(wanted - found)
    return result
