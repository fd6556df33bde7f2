"""Mapping revisions as data: every deployed revision of the mapping files, and the processes running one.

``mapping_revisions`` keeps each deployed revision whole (every mapping file and crosswalk as text,
the hash over them, the mapping labels it yields, when, the steward's message, and which revision
a rollback restored); the newest row is the deployed revision. ``hub_processes`` has one row per
running hub process saying which revision it maps with, refreshed while it runs, for ``saleshub
status``. Events get the status ``dismissed``: a quarantined or failed event an operator closed as
junk, with the reason in its errors (``saleshub events dismiss``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_EVENTS = "sales_system_integration_events"
_STATUS = "ck_sales_system_integration_events_status"
_BEFORE = "status IN ('accepted', 'mapped', 'duplicate', 'stale', 'quarantined', 'failed')"
_AFTER = "status IN ('accepted', 'mapped', 'duplicate', 'stale', 'quarantined', 'failed', 'dismissed')"


def upgrade() -> None:
    """Upgrade schema."""
    op.drop_constraint(op.f(_STATUS), _EVENTS, type_="check")
    op.execute(f"ALTER TABLE {_EVENTS} ADD CONSTRAINT {_STATUS} CHECK ({_AFTER})")
    op.create_table(
        "mapping_revisions",
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "content_hash", sa.Text(), nullable=False, comment="sha256 over every file's path and bytes"
        ),
        sa.Column("files", postgresql.JSONB(), nullable=False, comment="relative path -> file text"),
        sa.Column("mappings", postgresql.JSONB(), nullable=False, comment="system/name -> mapping label"),
        sa.Column("message", sa.Text(), nullable=True, comment="the steward's note"),
        sa.Column("rollback_of", sa.Integer(), nullable=True, comment="the revision this one restored"),
        sa.Column("deployed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("revision", name=op.f("pk_mapping_revisions")),
        comment="every deployed revision of the mapping files; the newest is the deployed one",
    )
    op.create_table(
        "hub_processes",
        sa.Column("process", sa.Text(), nullable=False, comment="host:pid of a running hub process"),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("mapping_revision", sa.Integer(), nullable=True, comment="NULL: files on disk"),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("process", name=op.f("pk_hub_processes")),
        comment="running hub processes and the mapping revision each maps with",
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("hub_processes")
    op.drop_table("mapping_revisions")
    op.execute(f"UPDATE {_EVENTS} SET status = 'quarantined' WHERE status = 'dismissed'")
    op.drop_constraint(op.f(_STATUS), _EVENTS, type_="check")
    op.execute(f"ALTER TABLE {_EVENTS} ADD CONSTRAINT {_STATUS} CHECK ({_BEFORE})")
