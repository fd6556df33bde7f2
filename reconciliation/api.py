"""A source's manifest read from its API: the pollers' client, each record mapped to the canonical order.

``ApiManifestReader`` asks the source for every record changed in the run's window through a
``RecordSource`` (``reconciliation.ports``) it is given: in the hub, the pollers' ``SourceClient`` of
the system (base URL, credentials from the secret store, rate limit, retries, timeouts:
``pollers.systems.<system>``; ``saleshub.actions.reconciliation_wiring.api_reader`` builds the
reader). Each record is mapped the
way a processor maps it (``adapter.translate``: decode, classify, the steward's mapping), so the row's
fingerprint is the canonical one and a differing order shows its field differences. A record that
cannot be mapped becomes a manifest row with a ``problem`` (its key when known, and the reason), which
the run reports as an unreadable manifest row; it never stops the run.

Rows are JSON lines: ``external_order_id``, ``source_version``, ``updated_at``, ``fingerprint`` and
``order`` (the canonical order).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from adapters.base import SourceAdapter
from adapters.source import SourceRecord
from adapters.source import Window as SourceWindow
from reconciliation.model import Window
from reconciliation.ports import RecordSource
from saleshub.errors import DataError
from saleshub.store.manifest import ManifestFormat

__all__ = ["ApiManifestReader", "ApiRecord", "source_window"]

#: Rows per chunk handed to ``COPY``.
_ROWS_PER_CHUNK = 500
_MAX_PROBLEM = 500


def source_window(window: Window) -> SourceWindow:
    """The run's window as the source client's ``[since, until)``."""
    return SourceWindow(since=window.start, until=window.end)


@dataclass(frozen=True, slots=True)
class ApiRecord:
    """One record of the source, its canonical order's key and manifest row, or why it cannot be mapped."""

    record: SourceRecord
    key: str | None
    row: bytes
    problem: str | None = None


class ApiManifestReader:
    """The manifest of one polled system, read from its API (see the module docstring)."""

    def __init__(
        self, adapter: SourceAdapter, open_client: Callable[[], AbstractContextManager[RecordSource]]
    ) -> None:
        if adapter.source is None:
            raise ValueError(f"the {adapter.system} adapter has no source API")
        self.adapter = adapter
        self.open_client = open_client
        #: Records read by the last ``chunks`` call, and how many of them could not be mapped.
        self.records_read = 0
        self.problems = 0

    @property
    def system(self) -> str:
        """The polled system."""
        return self.adapter.system

    @property
    def description(self) -> str:
        """``api SYSTEM`` (the base URL is configuration, not part of the run's record)."""
        return f"api {self.system}"

    @property
    def format(self) -> ManifestFormat:
        """JSON lines."""
        return ManifestFormat.JSONL

    def size(self) -> int | None:
        """Unknown ahead of reading."""
        return None

    def records(self, window: Window) -> Iterator[ApiRecord]:
        """Every record the source changed in ``window``, each with its manifest row."""
        with self.open_client() as client:
            for record in client.records(source_window(window)):
                yield self._mapped(record)

    def chunks(self, window: Window) -> Iterator[bytes]:
        """The manifest rows of ``window`` as JSON lines, a few hundred per chunk."""
        self.records_read = self.problems = 0
        rows: list[bytes] = []
        for item in self.records(window):
            self.records_read += 1
            self.problems += item.problem is not None
            rows.append(item.row)
            if len(rows) >= _ROWS_PER_CHUNK:
                yield b"".join(rows)
                rows.clear()
        if rows:
            yield b"".join(rows)

    def _mapped(self, record: SourceRecord) -> ApiRecord:
        stage = "decode"
        key: str | None = None
        try:
            document = self.adapter.decode(record.body)
            stage = "classify"
            info = self.adapter.classify(document)
            key = info.order_key
            stage = "map"
            mapping = self.adapter.catalog.get(self.system, self.adapter.mapping_name(document, info))
            order = mapping.apply(document).order
        except DataError as exc:
            reason = "; ".join(line.strip() for line in str(exc).splitlines())[:_MAX_PROBLEM]
            problem = f"the source's record cannot be mapped ({stage}): {reason}"
            head = {"problem": problem} if key is None else {"external_order_id": key, "problem": problem}
            row = json.dumps(head, ensure_ascii=False).encode() + b"\n"
            return ApiRecord(record, key, row, problem)
        updated = order.source_updated_at.isoformat() if order.source_updated_at is not None else None
        head_row = {
            "external_order_id": order.external_order_id,
            "source_version": order.source_version,
            "updated_at": updated,
            "fingerprint": order.fingerprint(),
        }
        text = json.dumps(head_row, ensure_ascii=False)[:-1] + ', "order": ' + order.model_dump_json() + "}\n"
        return ApiRecord(record, order.external_order_id, text.encode())
