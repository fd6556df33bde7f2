"""Healing a run: what the hub lacks or holds too old is fetched from the source again and recorded.

After a run, ``heal`` reads the window from the source's API once more (``ApiManifestReader.records``,
the pollers' client) and records its records through the ``PolledRecorder`` it is given
(``reconciliation.ports``; in the hub, the recorder's one record path, transport ``poll``, built
exactly as the poller builds its events: ``saleshub.receive.polling.sources.RecorderPolled``), so a
record has the idempotency key the poller gives it, and one the hub already holds (recorded but not
yet processed, say) is recorded nothing the second time.

Every record of the window goes that way, not only those of the orders the run found
``missing_in_hub`` or ``hub_stale``: a polled record's key holds its revision or content, so a record
the hub holds unchanged is a no-op, while one that changed under the same change time (which the
run may report as ``hub_stale``, or not at all when only fields its rules ignore differ) is
recorded. A processor then maps the recorded events like any others.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from reconciliation.api import ApiManifestReader, ApiRecord
from reconciliation.model import Kind, Window
from reconciliation.ports import PolledRecorder
from saleshub.store import findings
from saleshub.store.failures import database_errors

__all__ = ["HEALED_KINDS", "HealResult", "heal"]

#: The findings a re-fetch can cure.
HEALED_KINDS = (Kind.MISSING_IN_HUB, Kind.HUB_STALE)
_BATCH = 200


@dataclass(slots=True)
class HealResult:
    """What healing did (see the fields).

    ``wanted``: orders the run found missing or stale; ``recorded``/``repeated``: their records
    recorded now / already held; ``refused``: records intake refused; ``unreported``: records of
    other orders recorded now (the hub lacked that content: a change that kept its change time);
    ``not_found``: wanted orders the source no longer lists.
    """

    wanted: int = 0
    recorded: int = 0
    repeated: int = 0
    refused: int = 0
    unreported: int = 0
    not_found: list[str] = field(default_factory=list)


def _wanted(engine: Engine, run_id: uuid.UUID) -> set[str]:
    with database_errors(), engine.connect() as conn:
        return {
            str(finding["external_order_id"])
            for finding in findings.findings(conn, run_id)
            if finding["kind"] in HEALED_KINDS
        }


def _record(
    record: PolledRecorder,
    reader: ApiManifestReader,
    batch: Sequence[ApiRecord],
    run_id: uuid.UUID,
    wanted: set[str],
    result: HealResult,
) -> None:
    headers = {"reconcile-run": str(run_id)}
    receipts = record(reader.adapter, [found.record for found in batch], headers)
    for found, receipt in zip(batch, receipts, strict=True):
        if receipt.refused and not receipt.repeated:
            result.refused += 1
        elif found.key is None or found.key not in wanted:
            result.unreported += 0 if receipt.repeated else 1
        elif receipt.repeated:
            result.repeated += 1
        else:
            result.recorded += 1


def heal(
    engine: Engine, record: PolledRecorder, reader: ApiManifestReader, run_id: uuid.UUID, window: Window
) -> HealResult:
    """Record again, from the source, what the hub lacks of ``window`` (see the module docstring)."""
    wanted = _wanted(engine, run_id)
    result = HealResult(wanted=len(wanted))
    found: set[str] = set()
    batch: list[ApiRecord] = []
    for item in reader.records(window):
        if item.key is not None and item.key in wanted:
            found.add(item.key)
        batch.append(item)
        if len(batch) >= _BATCH:
            _record(record, reader, batch, run_id, wanted, result)
            batch.clear()
    if batch:
        _record(record, reader, batch, run_id, wanted, result)
    result.not_found = sorted(wanted - found)
    return result
