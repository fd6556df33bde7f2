"""The tamper-evident audit trail: one seal per ended hour of events and operator actions, chained.

A seal holds the Merkle roots of the hour's integration events and operator actions (each row's
immutable columns, ``saleshub.store.seals``), the ordered ids with their leaf hashes (compressed), so
that a verification can say which row changed, and the chain hash linking it to the seal before.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BYTES = sa.LargeBinary()


def upgrade() -> None:
    """Create ``audit_seals``."""
    op.create_table(
        "audit_seals",
        sa.Column(
            "period_start", sa.DateTime(timezone=True), nullable=False, comment="start of the sealed hour"
        ),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False, comment="its end (exclusive)"),
        sa.Column("events_count", sa.Integer(), nullable=False),
        sa.Column("events_root", _BYTES, nullable=False, comment="Merkle root of the events' leaves"),
        sa.Column("events_leaves", _BYTES, nullable=False, comment="zlib: (event id, leaf hash) by id"),
        sa.Column("actions_count", sa.Integer(), nullable=False),
        sa.Column("actions_root", _BYTES, nullable=False, comment="Merkle root of the actions' leaves"),
        sa.Column("actions_leaves", _BYTES, nullable=False, comment="zlib: (action id, leaf hash) by id"),
        sa.Column("root", _BYTES, nullable=False, comment="hash of the two roots"),
        sa.Column("previous_chain", _BYTES, nullable=False, comment="chain hash of the seal before"),
        sa.Column("chain", _BYTES, nullable=False, comment="H(previous_chain, root, period, counts)"),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("period_end > period_start", name=op.f("ck_audit_seals_period")),
        sa.PrimaryKeyConstraint("period_start", name=op.f("pk_audit_seals")),
        sa.UniqueConstraint("chain", name=op.f("uq_audit_seals_chain")),
        comment="the tamper-evident seals of the audit trail: one per ended hour, chained",
    )


def downgrade() -> None:
    """Drop ``audit_seals`` (the seals are lost; sealing again starts a new chain)."""
    op.drop_table("audit_seals")
