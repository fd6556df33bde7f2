"""Transactional outbox: ``event_outbox`` and the ``outbox_lanes`` relays lock to share the work.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LANES = 64  # saleshub.store.tables.OUTBOX_LANES at the time of this migration


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "event_outbox",
        sa.Column(
            "outbox_id",
            sa.BigInteger(),
            sa.Identity(always=True),
            nullable=False,
            comment="publication order",
        ),
        sa.Column("event_id", sa.UUID(), nullable=False, comment="the integration event; ce_id"),
        sa.Column("kind", sa.String(length=32), nullable=False, comment="order_received, order_updated, …"),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column(
            "message_key",
            sa.Text(),
            nullable=False,
            comment="{country}_{external order id}; no personal data",
        ),
        sa.Column("lane", sa.SmallInteger(), nullable=False, comment="crc32(message_key) % OUTBOX_LANES"),
        sa.Column(
            "source_system",
            sa.String(length=32),
            nullable=False,
            comment="ce_source is /saleshub/{source_system}",
        ),
        sa.Column("subject", sa.Text(), nullable=True, comment="ce_subject: the hub order id"),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False, comment="ce_time"),
        sa.Column("payload", sa.LargeBinary(), nullable=False, comment="Avro binary body, without framing"),
        sa.Column(
            "schema_fingerprint", sa.BigInteger(), nullable=False, comment="CRC-64-AVRO of the writer schema"
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "published_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="on the broker's acknowledgement",
        ),
        sa.Column("kafka_partition", sa.Integer(), nullable=True),
        sa.Column("kafka_offset", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(f"lane >= 0 AND lane < {LANES}", name=op.f("ck_event_outbox_lane")),
        sa.PrimaryKeyConstraint("outbox_id", name=op.f("pk_event_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_event_outbox_event_id")),
        comment="transactional outbox: canonical events waiting for (or given to) Kafka",
    )
    op.create_index(
        "ix_event_outbox_pending",
        "event_outbox",
        ["lane", "outbox_id"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_index("ix_event_outbox_published_at", "event_outbox", ["published_at"], unique=False)
    op.create_table(
        "outbox_lanes",
        sa.Column("lane", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("lane", name=op.f("pk_outbox_lanes")),
        comment="one row per lane; a relay holds a lane's row lock while it publishes that lane",
    )
    op.bulk_insert(sa.table("outbox_lanes", sa.column("lane")), [{"lane": lane} for lane in range(LANES)])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("outbox_lanes")
    op.drop_index("ix_event_outbox_published_at", table_name="event_outbox")
    op.drop_index(
        "ix_event_outbox_pending", table_name="event_outbox", postgresql_where=sa.text("published_at IS NULL")
    )
    op.drop_table("event_outbox")
