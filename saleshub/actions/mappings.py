"""Mapping revisions and drafts: validate, preview, impact, deploy, roll back, history, diff.

A draft is a copy of the deployed revision's files that a steward edits (a crosswalk row added, a
mapping file changed); it is validated, previewed against a recorded event and measured over the
last orders before it is deployed, all from the same functions the command line uses.
"""

from __future__ import annotations

import csv
import io
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from adapters.registry import AdapterRegistry
from saleshub.errors import DataError, InvalidRequestError, MappingError, NotFoundError, StateConflictError
from saleshub.mapping.catalog import CROSSWALK_DIR, MappingCatalog
from saleshub.mapping.revision import MappingFiles
from saleshub.stewards.deployment import Candidate, check_candidate, deploy, golden_results, rollback
from saleshub.stewards.goldens import CaseResult, render
from saleshub.stewards.impact import ImpactReport, mapping_impact
from saleshub.stewards.revision_diff import Change, diff_revisions
from saleshub.store import drafts as store_drafts
from saleshub.store import mapping_revisions as store
from saleshub.store.audit import Actor, AuditEntry, last_actors, record_action
from saleshub.store.failures import database_errors

__all__ = [
    "DeployResult",
    "Preview",
    "add_crosswalk_row",
    "deploy_draft",
    "deploy_files",
    "diff",
    "draft_goldens",
    "draft_of",
    "edit_draft_file",
    "history",
    "impact",
    "parse_revision",
    "preview",
    "revision_files",
    "rollback_to",
    "start_draft",
    "validate_files",
]


@dataclass(frozen=True, slots=True)
class DeployResult:
    """A deploy's outcome: the checked candidate and the new revision (``None``: nothing changed)."""

    candidate: Candidate
    revision: int | None


@dataclass
class Preview:
    """What one payload becomes with a catalog: the canonical order, or every error that stops it."""

    ok: bool
    mapping: str | None = None
    result: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    rejected: str | None = None


def parse_revision(text: str) -> int:
    """A revision number from ``3`` or ``r3``."""
    digits = text.strip().lower().removeprefix("r")
    if not digits.isdigit():
        raise InvalidRequestError(f"a revision is a number like 3 or r3; got {text!r}")
    return int(digits)


def revision_files(engine: Engine, number: int) -> dict[str, str]:
    """The files of stored revision ``number``."""
    with database_errors(), engine.connect() as conn:
        found = store.stored_revision(conn, number)
    if found is None:
        raise NotFoundError(f"no mapping revision r{number}; see `saleshub mappings history`")
    return found.files


def validate_files(files: dict[str, str]) -> MappingCatalog:
    """Compile ``files``; ``MappingLoadError`` lists every problem with file and line."""
    return MappingFiles(files).catalog()


def preview(catalog: MappingCatalog, system: str, body: bytes, max_body_bytes: int) -> Preview:
    """Map ``body`` as ``system`` with ``catalog``; nothing is written."""
    adapter = AdapterRegistry.default().create(system, catalog, max_body_bytes=max_body_bytes)
    try:
        translation = adapter.translate(body)
    except MappingError as exc:
        errors = [
            {
                "target": e.target,
                "source": e.source,
                "rule": e.rule,
                "value": repr(e.value) if e.has_value else None,
            }
            for e in exc.errors
        ]
        return Preview(ok=False, mapping=exc.mapping, errors=errors)
    except DataError as exc:
        return Preview(ok=False, rejected=str(exc))
    rendered: dict[str, Any] = render(translation)
    rendered["mapping"] = {
        "label": translation.mapped.mapping.label,
        "content_hash": translation.mapped.mapping.content_hash,
    }
    rendered["fingerprint"] = translation.mapped.order.fingerprint()
    return Preview(ok=True, mapping=translation.mapped.mapping.label, result=rendered)


def impact(
    conn: Connection,
    deployed: MappingCatalog,
    candidate: MappingCatalog,
    system: str,
    last: int,
    max_body_bytes: int,
) -> ImpactReport:
    """What ``candidate`` would change against ``deployed`` over ``system``'s last ``last`` orders."""
    registry = AdapterRegistry.default()
    current_adapter = registry.create(system, deployed, max_body_bytes=max_body_bytes)
    candidate_adapter = registry.create(system, candidate, max_body_bytes=max_body_bytes)
    return mapping_impact(conn, current_adapter, candidate_adapter, last)


def deploy_files(
    engine: Engine,
    directory: Path,
    samples_dir: Path | None,
    message: str | None,
    actor: Actor,
) -> DeployResult:
    """Check ``directory``'s files and golden samples, then deploy them; audited."""
    candidate = check_candidate(directory, samples_dir)
    number = deploy(engine, candidate.files, candidate.catalog, message)
    if number is not None:
        with database_errors(), engine.begin() as conn:
            record_action(
                conn,
                actor,
                "mappings.deploy",
                "mapping_revision",
                str(number),
                message,
                {"content_hash": candidate.files.content_hash},
            )
    return DeployResult(candidate, number)


def rollback_to(engine: Engine, number: int, message: str | None, actor: Actor) -> int:
    """Deploy revision ``number``'s files again as a new revision; audited."""
    deployed = rollback(engine, number, message)
    with database_errors(), engine.begin() as conn:
        record_action(
            conn, actor, "mappings.rollback", "mapping_revision", str(deployed), message, {"files_of": number}
        )
    return deployed


def history(conn: Connection, limit: int) -> list[tuple[store.StoredRevision, AuditEntry | None]]:
    """Deployed revisions, newest first, each with the person who deployed it (if recorded)."""
    revisions = store.revision_history(conn, limit)
    actors = last_actors(conn, "mapping_revision", [str(r.revision) for r in revisions])
    return [(revision, actors.get(str(revision.revision))) for revision in revisions]


def diff(old: dict[str, str], new: dict[str, str]) -> list[Change]:
    """Field by field and row by row, what changed from ``old`` to ``new``."""
    return diff_revisions(old, new)


def start_draft(engine: Engine, actor: Actor, mappings_dir: Path) -> uuid.UUID:
    """A new draft of the deployed revision's files (``mappings_dir``'s when none is deployed); its id."""
    with database_errors(), engine.begin() as conn:
        current = store.deployed_revision(conn, with_files=True)
        files = current.files if current is not None else MappingFiles.read(mappings_dir).files
        base = current.revision if current is not None else None
        draft_id = store_drafts.create_draft(conn, files, base, actor.subject)
        record_action(conn, actor, "drafts.create", "draft", str(draft_id), None, {"base": base})
    return draft_id


def draft_of(conn: Connection, draft_id: uuid.UUID) -> store_drafts.Draft:
    """The draft, or ``NotFoundError``."""
    found = store_drafts.get_draft(conn, draft_id)
    if found is None:
        raise NotFoundError(f"no mapping draft {draft_id}")
    return found


def edit_draft_file(engine: Engine, draft_id: uuid.UUID, path: str, text: str, actor: Actor) -> None:
    """Replace (or add) one file of an undeployed draft; audited."""
    with database_errors(), engine.begin() as conn:
        draft = draft_of(conn, draft_id)
        if draft.deployed_as is not None:
            raise StateConflictError(
                f"draft {draft_id} was deployed as r{draft.deployed_as}; start a new one"
            )
        if path not in draft.files and not path.startswith(f"{CROSSWALK_DIR}/"):
            raise InvalidRequestError(f"{path} is not a file of the draft")
        files = {**draft.files, path: text}
        store_drafts.save_files(conn, draft_id, files)
        record_action(conn, actor, "drafts.edit", "draft", str(draft_id), None, {"file": path})


def add_crosswalk_row(engine: Engine, draft_id: uuid.UUID, path: str, row: str, actor: Actor) -> None:
    """Append one CSV row to a crosswalk of the draft; the row must have the crosswalk's columns."""
    with database_errors(), engine.connect() as conn:
        draft = draft_of(conn, draft_id)
    if not path.startswith(f"{CROSSWALK_DIR}/") or path not in draft.files:
        raise InvalidRequestError(f"{path} is not a crosswalk of the draft")
    text = draft.files[path]
    header = next(csv.reader(io.StringIO(text)), [])
    cells = next(csv.reader(io.StringIO(row.strip())), [])
    if len(cells) != len(header):
        raise InvalidRequestError(
            f"{path} has {len(header)} columns ({', '.join(header)}); the row has {len(cells)}"
        )
    edited = text if text.endswith("\n") else text + "\n"
    edited_row = io.StringIO()
    csv.writer(edited_row, lineterminator="\n").writerow(cells)
    edit_draft_file(engine, draft_id, path, edited + edited_row.getvalue(), actor)


def deploy_draft(
    engine: Engine, draft_id: uuid.UUID, samples_dir: Path | None, message: str | None, actor: Actor
) -> DeployResult:
    """Check and deploy a draft's files (golden samples included); audited; the draft is closed."""
    if not (message or "").strip():
        raise InvalidRequestError("a deploy needs a message saying why (it is shown in the history)")
    with database_errors(), engine.connect() as conn:
        draft = draft_of(conn, draft_id)
    if draft.deployed_as is not None:
        raise StateConflictError(f"draft {draft_id} was already deployed as r{draft.deployed_as}")
    with tempfile.TemporaryDirectory(prefix="saleshub-draft-") as scratch:
        MappingFiles(draft.files).write(Path(scratch))
        result = deploy_files(engine, Path(scratch), samples_dir, message, actor)
    if result.revision is not None:
        with database_errors(), engine.begin() as conn:
            store_drafts.mark_deployed(conn, draft_id, result.revision)
    return result


def draft_goldens(engine: Engine, draft_id: uuid.UUID, samples_dir: Path) -> list[CaseResult]:
    """The golden samples run through a draft's mappings (what a deploy of it would check)."""
    with database_errors(), engine.connect() as conn:
        draft = draft_of(conn, draft_id)
    if not samples_dir.is_dir():
        raise NotFoundError(f"no golden samples directory {samples_dir.name} (SALESHUB_SAMPLES_DIR)")
    return golden_results(validate_files(draft.files), samples_dir)
