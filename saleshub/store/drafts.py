"""Stewards' mapping drafts: edited copies of the deployed files, kept until they are deployed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from saleshub.store.tables import mapping_drafts

__all__ = ["Draft", "create_draft", "get_draft", "mark_deployed", "save_files"]

_D = mapping_drafts.c


@dataclass(frozen=True, slots=True)
class Draft:
    """One draft: the files as edited, the revision it started from, who started it."""

    draft_id: uuid.UUID
    base_revision: int | None
    files: dict[str, str]
    created_by: str
    created_at: datetime
    updated_at: datetime
    deployed_as: int | None


def create_draft(
    conn: Connection, files: dict[str, str], base_revision: int | None, created_by: str
) -> uuid.UUID:
    """Store a new draft of ``files``; its id."""
    draft_id = uuid.uuid4()
    conn.execute(
        insert(mapping_drafts).values(
            draft_id=draft_id, base_revision=base_revision, files=files, created_by=created_by
        )
    )
    return draft_id


def get_draft(conn: Connection, draft_id: uuid.UUID) -> Draft | None:
    """The draft, or ``None``."""
    row = conn.execute(select(mapping_drafts).where(_D.draft_id == draft_id)).first()
    return Draft(**row._mapping) if row is not None else None


def save_files(conn: Connection, draft_id: uuid.UUID, files: dict[str, str]) -> None:
    """Replace the draft's files."""
    conn.execute(
        update(mapping_drafts).where(_D.draft_id == draft_id).values(files=files, updated_at=func.now())
    )


def mark_deployed(conn: Connection, draft_id: uuid.UUID, revision: int) -> None:
    """Note the revision the draft became."""
    conn.execute(update(mapping_drafts).where(_D.draft_id == draft_id).values(deployed_as=revision))
