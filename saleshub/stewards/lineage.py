"""Field lineage: for a stored order version (or a quarantined event), why each field has its value.

Nothing is recorded at ingest. ``explain_version`` / ``explain_event`` take the stored raw body and
the mapping revision that produced the version (stored whole in PostgreSQL), map the body again
with the tracing interpreter (``saleshub.mapping.tracing``) and return, per canonical field, the
source path read and the raw value found (with the XML line), each transform with its result, the
crosswalk row used, the default, the conversion and the rule's file:line. The result is checked
before it is shown: the traced mapping must give exactly what the generated code gives, and the
canonical order it makes must equal the stored version, field for field; otherwise the lineage says
"not reproducible with this hub version" and lists the differences instead of a trace that lies.
For a quarantined event the stored field errors must come out again the same way.

Values of personal-data fields are masked unless asked for (``show_personal``), and then the
caller's reason is logged. ``OrderLineage.as_json`` is the JSON form the command line prints with
``--json`` (and an operator API can serve as it is).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection

from adapters.base import SourceAdapter
from adapters.registry import AdapterRegistry
from canonical.model import ServiceOrder, is_personal_field
from saleshub.errors import (
    ConfigurationError,
    DataError,
    FieldError,
    InvalidRequestError,
    MappingError,
    NotFoundError,
    generic_target,
)
from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.engine import CompiledMapping
from saleshub.mapping.revision import MappingFiles
from saleshub.mapping.tracing import FieldTrace, Step, trace
from saleshub.platform.masking import MASK, is_personal_path, mask
from saleshub.store import lineage as reads
from saleshub.store import mapping_revisions, queries

__all__ = [
    "ERASED_REASON",
    "NOT_REPRODUCIBLE",
    "Difference",
    "FieldLineage",
    "OrderLineage",
    "RevisionCatalogs",
    "explain_event",
    "explain_version",
    "find_order_id",
    "jsonable",
    "revision_of",
]

log = logging.getLogger(__name__)

#: What the lineage says when mapping the stored body again does not give the stored result.
NOT_REPRODUCIBLE = "not reproducible with this hub version"

_REVISION = re.compile(r"/r(\d+)$")
_MISSING = object()
_ANY_SIZE = 2**31 - 1


def revision_of(label: str | None) -> int | None:
    """The deployed revision number in a mapping label (``pyxis/order@2026.11.1#3fa2c1d09b7e/r4``)."""
    found = _REVISION.search(label or "")
    return int(found.group(1)) if found else None


class RevisionCatalogs:
    """Stored mapping revisions compiled on first use, each once (compiling takes a while)."""

    def __init__(self) -> None:
        self._compiled: dict[int, MappingCatalog] = {}
        self._adapters: dict[tuple[int, str], SourceAdapter] = {}
        self._registry = AdapterRegistry.default()

    def get(self, conn: Connection, number: int) -> MappingCatalog:
        """Revision ``number`` compiled; ``ConfigurationError`` if it is not stored."""
        found = self._compiled.get(number)
        if found is None:
            stored = mapping_revisions.stored_revision(conn, number)
            if stored is None:
                raise ConfigurationError(f"mapping revision r{number} is not stored in this database")
            found = MappingFiles(stored.files).catalog(number)
            self._compiled[number] = found
        return found

    def adapter(self, conn: Connection, number: int, system: str) -> SourceAdapter:
        """``system``'s adapter over revision ``number``'s mappings."""
        found = self._adapters.get((number, system))
        if found is None:
            # A stored body was accepted once under the size limit of its day: it is not measured again.
            found = self._registry.create(system, self.get(conn, number), max_body_bytes=_ANY_SIZE)
            self._adapters[(number, system)] = found
        return found


def jsonable(value: Any) -> Any:
    """``value`` in a JSON-ready form: decimals and times as text, as the canonical order has them."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)


@dataclass(frozen=True, slots=True)
class Difference:
    """A canonical value that mapping the stored body again does not give (``_MISSING``: absent)."""

    target: str
    stored: Any
    now: Any


@dataclass(slots=True)
class FieldLineage:
    """One canonical field's trace, its canonical value, and whether it is masked."""

    target: str
    rule: str  # file:line of the rule in the mapping revision
    steps: list[Step]
    value: Any  # the canonical value (JSON form) the trace ends in
    errors: list[FieldError] = field(default_factory=list)
    masked: bool = False
    group: bool = False


@dataclass(slots=True)
class OrderLineage:
    """The lineage of one order version or event: where it came from, and each field's trace."""

    order: str | None  # SYSTEM:EXTERNAL_ID
    hub_order_id: uuid.UUID | None
    version_no: int | None
    latest_version: int | None
    event_id: uuid.UUID
    event_status: str
    mapping: str | None  # the label of the mapping that produced it
    revision: int | None
    mapping_file: str | None
    reproducible: bool
    reason: str = ""  # why it is not reproducible, or where the event stopped
    differences: list[Difference] = field(default_factory=list)
    fields: list[FieldLineage] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)  # a quarantined event's field errors
    personal_shown: bool = False

    def as_json(self) -> dict[str, Any]:
        """The JSON form (``orders explain --json``, and an operator API)."""
        return {
            "order": self.order,
            "hub_order_id": None if self.hub_order_id is None else str(self.hub_order_id),
            "version": self.version_no,
            "latest_version": self.latest_version,
            "event_id": str(self.event_id),
            "event_status": self.event_status,
            "mapping": self.mapping,
            "revision": self.revision,
            "mapping_file": self.mapping_file,
            "reproducible": self.reproducible,
            "reason": self.reason or None,
            "differences": [
                {
                    "field": d.target,
                    "stored": None if d.stored is _MISSING else d.stored,
                    "now": None if d.now is _MISSING else d.now,
                }
                for d in self.differences
            ],
            "fields": [_field_json(f) for f in self.fields],
            "errors": self.errors,
            "personal_data_shown": self.personal_shown,
        }


def _field_json(found: FieldLineage) -> dict[str, Any]:
    return {
        "field": found.target,
        "rule": found.rule,
        "value": found.value,
        "masked": found.masked,
        "steps": [
            {
                "step": s.kind,
                "text": s.text,
                **({"value": jsonable(s.value)} if s.has_value else {}),
                **({"depth": s.depth} if s.depth else {}),
                **({"source": s.source} if s.source is not None else {}),
                **({"line": s.line} if s.line is not None else {}),
                **({"crosswalk": s.crosswalk} if s.crosswalk is not None else {}),
                **({"row": s.row, "row_cells": s.row_cells} if s.row is not None else {}),
            }
            for s in found.steps
        ],
        "errors": [e.as_dict() for e in found.errors],
    }


def find_order_id(conn: Connection, reference: str) -> uuid.UUID | None:
    """The hub id of an order given as a hub id or ``SYSTEM:EXTERNAL_ORDER_ID``; ``None``: no such order."""
    if ":" in reference:
        system, external_id = reference.split(":", 1)
        row = queries.find_order(conn, system=system, external_id=external_id)
    else:
        try:
            wanted = uuid.UUID(reference)
        except ValueError:
            raise InvalidRequestError(
                f"ORDER is a hub order id or SYSTEM:EXTERNAL_ORDER_ID; got {reference!r}"
            ) from None
        row = queries.find_order(conn, hub_order_id=wanted)
    return None if row is None else row.hub_order_id


def explain_version(
    conn: Connection,
    catalogs: RevisionCatalogs,
    hub_order_id: uuid.UUID,
    *,
    version: int | None = None,
    fields: Sequence[str] = (),
    show_personal: bool = False,
    reason: str | None = None,
) -> OrderLineage:
    """The lineage of version ``version`` (default: the newest) of an order."""
    order = queries.find_order(conn, hub_order_id=hub_order_id)
    row = reads.order_version(conn, hub_order_id, version)
    if order is None or row is None:
        what = (
            f"version {version} of order {hub_order_id}" if version is not None else f"order {hub_order_id}"
        )
        raise NotFoundError(f"no {what} in the store")
    lineage = OrderLineage(
        order=f"{order.source_system}:{order.external_order_id}",
        hub_order_id=hub_order_id,
        version_no=row.version_no,
        latest_version=row.latest,
        event_id=row.event_id,
        event_status=row.event_status,
        mapping=row.mapping,
        revision=revision_of(row.mapping),
        mapping_file=None,
        reproducible=False,
    )
    if row.erased:  # nothing personal is left to show, and the body that made it is gone with it
        lineage.reason = ERASED_REASON
        return lineage
    _log_personal(lineage, show_personal, reason, fields)
    prepared = _prepare(conn, catalogs, lineage, order.source_system, row.raw_body)
    if prepared is None:
        return lineage
    mapping, document = prepared
    data, errors, traces = trace(mapping.root, document)
    now = _reproduce(lineage, mapping, document, data, errors)
    if now is None:
        return lineage
    stored = dict(row.content)
    lineage.differences = _differences(stored, now, show_personal)
    if lineage.differences:
        lineage.reason = (
            f"{NOT_REPRODUCIBLE}: mapping the stored raw body again does not give the stored order"
        )
        return lineage
    lineage.reproducible = True
    lineage.fields = _fields(traces, now, mapping, fields, show_personal)
    return lineage


def explain_event(
    conn: Connection,
    catalogs: RevisionCatalogs,
    event_id: uuid.UUID,
    *,
    fields: Sequence[str] = (),
    show_personal: bool = False,
    reason: str | None = None,
) -> OrderLineage:
    """The lineage of one event: a quarantined one up to the field that failed, and why."""
    row = queries.event(conn, event_id)
    if row is None:
        raise NotFoundError(f"no event {event_id} in the store")
    lineage = OrderLineage(
        order=f"{row.source_system}:{row.order_key}" if row.order_key else None,
        hub_order_id=row.hub_order_id,
        version_no=row.order_version_no,
        latest_version=None,
        event_id=row.event_id,
        event_status=row.status,
        mapping=row.mapping,
        revision=revision_of(row.mapping),
        mapping_file=None,
        reproducible=False,
    )
    if row.raw_body_erased:
        lineage.reason = ERASED_REASON
        return lineage
    stored_errors: dict[str, Any] = dict(row.errors or {})
    stage = stored_errors.get("stage")
    if row.status in ("quarantined", "failed") and stage != "mapping":
        lineage.reason = f"stopped at stage {stage or 'unknown'}: {stored_errors.get('message', '')}"
        return lineage
    if row.status == "quarantined":
        _log_personal(lineage, show_personal, reason, fields)
    if row.mapping is None:
        lineage.reason = f"the event ({row.status}) was not mapped: nothing to trace"
        return lineage
    if row.status != "quarantined":
        if row.hub_order_id is None or row.order_version_no is None or row.status != "mapped":
            lineage.reason = f"the event is {row.status}: it made no order version of its own to trace"
            return lineage
        return explain_version(
            conn,
            catalogs,
            row.hub_order_id,
            version=row.order_version_no,
            fields=fields,
            show_personal=show_personal,
            reason=reason,
        )
    prepared = _prepare(conn, catalogs, lineage, row.source_system, reads.event_body(conn, event_id))
    if prepared is None:
        return lineage
    mapping, document = prepared
    data, errors, traces = trace(mapping.root, document)
    found = _quarantine_errors(mapping, document, data, errors)
    stored_fields = list(stored_errors.get("fields") or [])
    if [e.as_dict() for e in found] != stored_fields or (data, errors) != mapping.produce(document):
        lineage.reason = (
            f"{NOT_REPRODUCIBLE}: mapping the stored raw body again does not give its field errors"
        )
        lineage.errors = stored_fields
        return lineage
    lineage.reproducible = True
    lineage.reason = str(stored_errors.get("message", "quarantined"))
    lineage.errors = stored_fields
    _attach(traces, found)
    failing = next((n for n, t in enumerate(traces) if t.errors), len(traces) - 1)
    chosen = traces if fields else traces[: failing + 1]
    lineage.fields = _fields(chosen, None, mapping, fields, show_personal)
    return lineage


#: Why an erased order version has no lineage.
ERASED_REASON = (
    "the customer's personal data of this version was erased (saleshub privacy erase, or retention): "
    "its raw body and personal fields cannot be read, so its lineage cannot be computed"
)


def _log_personal(lineage: OrderLineage, show: bool, reason: str | None, fields: Sequence[str]) -> None:
    if not show:
        return
    if not reason or not reason.strip():
        raise ConfigurationError('personal data is shown only with a reason (--reason "...")')
    lineage.personal_shown = True
    log.warning(
        "personal data shown in the lineage of event %s (order %s, fields %s); reason: %s",
        lineage.event_id,
        lineage.hub_order_id,
        ", ".join(fields) or "all",
        mask(reason.strip()),
    )


def _prepare(
    conn: Connection, catalogs: RevisionCatalogs, lineage: OrderLineage, system: str, body: bytes | None
) -> tuple[CompiledMapping, Any] | None:
    """The mapping that produced the version and the decoded body; ``None`` (with the reason) if not."""
    if body is None:
        lineage.reason = "the raw body is no longer kept (retention): the lineage cannot be computed"
        return None
    if lineage.revision is None:
        lineage.reason = (
            f"mapping {lineage.mapping} is not a deployed revision (files read from a directory): "
            "its files are not stored"
        )
        return None
    catalog = catalogs.get(conn, lineage.revision)
    adapter = catalogs.adapter(conn, lineage.revision, system)
    try:
        document = adapter.decode(bytes(body))
        mapping = catalog.get(system, adapter.mapping_name(document, adapter.classify(document)))
    except DataError as exc:
        lineage.reason = f"{NOT_REPRODUCIBLE}: the stored raw body no longer decodes ({exc})"
        return None
    lineage.mapping_file = mapping.identity.file
    if mapping.identity.label != lineage.mapping:
        lineage.reason = (
            f"{NOT_REPRODUCIBLE}: revision r{lineage.revision} compiles to {mapping.identity.label}, "
            f"not {lineage.mapping}"
        )
        return None
    return mapping, document


def _reproduce(
    lineage: OrderLineage,
    mapping: CompiledMapping,
    document: Any,
    data: dict[str, Any],
    errors: list[FieldError],
) -> dict[str, Any] | None:
    """The canonical order (JSON form) the traced mapping gives; ``None`` (with the reason) if none."""
    if (data, errors) != mapping.produce(document):
        lineage.reason = (
            f"{NOT_REPRODUCIBLE}: the traced mapping and the generated code disagree on this body"
        )
        return None
    if errors:
        lineage.reason = f"{NOT_REPRODUCIBLE}: mapping the stored raw body again fails: {errors[0]}"
        return None
    try:
        order = ServiceOrder.model_validate(data)
    except ValidationError as exc:
        lineage.reason = f"{NOT_REPRODUCIBLE}: the canonical model refuses it now: {exc.errors()[0]['msg']}"
        return None
    now: dict[str, Any] = json.loads(order.model_dump_json())
    return now


def _quarantine_errors(
    mapping: CompiledMapping, document: Any, data: dict[str, Any], errors: list[FieldError]
) -> list[FieldError]:
    """The field errors the hub records for ``document`` (mapping errors, then the model's)."""
    try:
        mapping.apply(document)
    except MappingError as exc:
        return list(exc.errors)
    return []


def _attach(traces: list[FieldTrace], errors: list[FieldError]) -> None:
    """Give each field trace the canonical model's errors about it (the mapping's are there already)."""
    by_target = {t.target: t for t in traces}
    for error in errors:
        owner = by_target.get(error.target)
        if owner is not None and error not in owner.errors:
            owner.errors.append(error)
            owner.steps.append(Step("error", error.rule, error.value, error.has_value, source=error.source))


def _at(content: Any, target: str) -> Any:
    """The value at ``lines[0].unit_price`` in a canonical order's JSON form (``_MISSING``: none)."""
    current = content
    for part in target.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("["):
            index = int(part[1:-1])
            current = current[index] if isinstance(current, list) and index < len(current) else _MISSING
        else:
            current = current.get(part, _MISSING) if isinstance(current, dict) else _MISSING
        if current is _MISSING:
            return _MISSING
    return current


def _leaves(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _leaves(inner, f"{prefix}.{key}" if prefix else key, out)
    elif isinstance(value, list) and value:
        for index, inner in enumerate(value):
            _leaves(inner, f"{prefix}[{index}]", out)
    else:
        out[prefix] = value
    return out


def _differences(stored: dict[str, Any], now: dict[str, Any], show_personal: bool) -> list[Difference]:
    old, new = _leaves(stored, "", {}), _leaves(now, "", {})
    found = []
    for target in sorted(old.keys() | new.keys()):
        before, after = old.get(target, _MISSING), new.get(target, _MISSING)
        if before != after:
            if is_personal_field(target) and not show_personal:
                before, after = (v if v is _MISSING or v is None else MASK for v in (before, after))
            found.append(Difference(target, before, after))
    return found


def _wanted(target: str, fields: Sequence[str]) -> bool:
    if not fields:
        return True
    generic = generic_target(target)
    for wanted in fields:
        if "[" in wanted:
            if target == wanted or target.startswith((f"{wanted}.", f"{wanted}[")):
                return True
        elif generic == wanted or generic.startswith(f"{wanted}."):
            return True
    return False


def _fields(
    traces: list[FieldTrace],
    now: dict[str, Any] | None,
    mapping: CompiledMapping,
    fields: Sequence[str],
    show_personal: bool,
) -> list[FieldLineage]:
    found: list[FieldLineage] = []
    for item in traces:
        if not _wanted(item.target, fields):
            continue
        value = jsonable(item.value) if now is None else _at(now, item.target)
        steps = list(item.steps)
        if now is not None and not item.group and item.value is None and value not in (_MISSING, None):
            steps.append(Step("default", "nothing mapped: the canonical model's default", value))
        if value is _MISSING:
            value = None
        personal = is_personal_field(item.target) and not show_personal
        if personal:
            steps = [_masked(s) for s in steps]
            value = None if value is None else MASK
        elif not show_personal:  # a rule may test a personal value (a company name) for another field
            steps = [_masked(s) if _reads_personal(s) else s for s in steps]
        rule = f"{mapping.identity.file}:{item.rule_line}" if item.rule_line else mapping.identity.file
        found.append(FieldLineage(item.target, rule, steps, value, item.errors, personal, item.group))
    if fields and not found:
        known = sorted({generic_target(t.target) for t in traces})
        raise ConfigurationError(
            f"{mapping.identity.label} maps none of {', '.join(fields)}; its fields: {', '.join(known)}"
        )
    return found


def _reads_personal(step: Step) -> bool:
    """Whether a step read a source field whose name says it holds personal data (``companyName``)."""
    return step.source is not None and is_personal_path(step.source)


def _masked(step: Step) -> Step:
    if not step.has_value or step.value is None:
        return step
    return Step(
        step.kind, step.text, MASK, True, step.depth, step.source, step.line, step.crosswalk, step.row, None
    )
