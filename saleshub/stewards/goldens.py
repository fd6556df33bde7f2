"""Golden samples: source payloads with their reviewed canonical output, compared field by field.

Layout: ``contracts/samples/<system>/<case>.json|.xml`` and beside each one
``<case>.expected.json`` holding ``{"event": …, "order": …}`` for a payload that must map, or
``{"event": …, "errors": [{"target", "rule"}, …]}`` for one that must be refused with those errors,
or ``{"event": {…, "cancels": {"order", "reason", "cancelled_at"}}}`` for a cancellation by
reference (nothing to map: the processor cancels the stored order).
``saleshub mappings test`` runs them all; ``--update`` rewrites the expected files from the current
output, for a person to review in the diff before committing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.base import SourceAdapter, Translation
from saleshub.errors import CancelsByReferenceError, DataError, DocumentRuleError, MappingError

__all__ = ["CaseResult", "Difference", "GoldenCase", "discover", "render", "run_case"]

_PAYLOAD_SUFFIXES = (".json", ".xml")
_EXPECTED_SUFFIX = ".expected.json"


@dataclass(frozen=True, slots=True)
class GoldenCase:
    """One sample payload and the file holding its expected output."""

    system: str
    name: str
    payload: Path
    expected: Path


@dataclass(frozen=True, slots=True)
class Difference:
    """One field whose actual value differs from the expected one."""

    field: str
    expected: Any
    actual: Any


@dataclass(slots=True)
class CaseResult:
    """The outcome of one golden case."""

    case: GoldenCase
    actual: dict[str, Any]
    differences: list[Difference] = field(default_factory=list)
    missing_expected: bool = False

    @property
    def passed(self) -> bool:
        """Whether the actual output equals the expected one."""
        return not self.differences and not self.missing_expected


def discover(samples_dir: Path, systems: list[str] | None = None) -> Iterator[GoldenCase]:
    """Every sample payload under ``samples_dir`` (optionally of some systems only), sorted."""
    for system_dir in sorted(p for p in samples_dir.iterdir() if p.is_dir()):
        if systems and system_dir.name not in systems:
            continue
        for payload in sorted(system_dir.iterdir()):
            if payload.suffix in _PAYLOAD_SUFFIXES and not payload.name.endswith(_EXPECTED_SUFFIX):
                stem = payload.name.removesuffix(payload.suffix)
                expected = payload.with_name(stem + _EXPECTED_SUFFIX)
                yield GoldenCase(system_dir.name, stem, payload, expected)


def render(translation: Translation) -> dict[str, Any]:
    """The expected-file form of a successful translation."""
    event = translation.event
    return {
        "event": {
            "event_type": event.event_type.value,
            "idempotency_key": event.idempotency_key,
            "source_version": event.source_version,
            "mapping": translation.mapped.mapping.name,
        },
        "order": translation.mapped.order.model_dump(mode="json"),
    }


def _render_failure(adapter: SourceAdapter, body: bytes, error: DataError) -> dict[str, Any]:
    event: dict[str, Any] | None = None
    try:
        info = adapter.classify(adapter.decode(body))
        if isinstance(error, CancelsByReferenceError) and info.cancels is not None:
            # Nothing to map: the expected form is what the cancellation says of the order it names.
            cancels = info.cancels
            when = cancels.cancelled_at.isoformat() if cancels.cancelled_at else None
            return {
                "event": {
                    "event_type": info.event_type.value,
                    "idempotency_key": info.idempotency_key,
                    "source_version": info.source_version,
                    "cancels": {"order": info.order_key, "reason": cancels.reason, "cancelled_at": when},
                }
            }
        event = {
            "event_type": info.event_type.value,
            "idempotency_key": info.idempotency_key,
            "source_version": info.source_version,
            "mapping": info.mapping_name,
        }
    except DataError:
        event = None
    if isinstance(error, MappingError):
        errors = [{"target": e.target, "rule": e.rule} for e in error.errors]
    elif isinstance(error, DocumentRuleError):
        errors = [{"target": v.location, "rule": f"{v.rule}: {v.message}"} for v in error.violations]
    else:
        errors = [{"target": "(body)", "rule": str(error)}]
    return {"event": event, "errors": errors}


def _diff(expected: Any, actual: Any, where: str, out: list[Difference]) -> None:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in list(expected) + [k for k in actual if k not in expected]:
            child = f"{where}.{key}" if where else str(key)
            _diff(expected.get(key), actual.get(key), child, out)
    elif isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _diff(e, a, f"{where}[{index}]", out)
    elif expected != actual:
        out.append(Difference(where or "(root)", expected, actual))


def run_case(case: GoldenCase, adapter: SourceAdapter) -> CaseResult:
    """Translate the case's payload and compare with its expected file."""
    body = case.payload.read_bytes()
    try:
        actual = render(adapter.translate(body))
    except DataError as exc:
        actual = _render_failure(adapter, body, exc)
    if not case.expected.is_file():
        return CaseResult(case, actual, missing_expected=True)
    expected = json.loads(case.expected.read_text(encoding="utf-8"))
    differences: list[Difference] = []
    _diff(expected, actual, "", differences)
    return CaseResult(case, actual, differences)
