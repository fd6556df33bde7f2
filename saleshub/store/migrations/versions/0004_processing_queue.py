"""Record, then process: ``event_queue`` holds recorded events until a processor maps them.

Every transport now only records the raw event (status ``accepted``) and queues it in the same
transaction; processors take queued events by lanes of the order key (``processor_lanes``, locked
``FOR UPDATE SKIP LOCKED`` like the outbox relay's lanes) and, in one transaction per batch, store
the orders, the outbox rows and each event's final status, and delete the queue rows. The event
learns the source's order reference at intake (``order_key``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LANES = 64  # saleshub.store.tables.PROCESSOR_LANES at the time of this migration


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column(
        "sales_system_integration_events",
        sa.Column("order_key", sa.Text(), nullable=True, comment="the source's order reference, at intake"),
    )
    op.add_column(
        "sales_system_integration_events",
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), nullable=True, comment="when a processor finished it"
        ),
    )
    op.create_table(
        "event_queue",
        sa.Column(
            "queue_id", sa.BigInteger(), sa.Identity(always=True), nullable=False, comment="processing order"
        ),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_system", sa.String(length=32), nullable=False),
        sa.Column("lane", sa.SmallInteger(), nullable=False, comment="crc32(system:order key) % lanes"),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(f"lane >= 0 AND lane < {LANES}", name=op.f("ck_event_queue_lane")),
        sa.PrimaryKeyConstraint("queue_id", name=op.f("pk_event_queue")),
        comment="recorded events waiting for a processor; a row goes when its event is processed",
    )
    op.create_index("ix_event_queue_lane", "event_queue", ["lane", "queue_id"], unique=False)
    op.create_table(
        "processor_lanes",
        sa.Column("lane", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("lane", name=op.f("pk_processor_lanes")),
        comment="one row per lane; a processor holds a lane's row lock while it processes that lane",
    )
    op.bulk_insert(sa.table("processor_lanes", sa.column("lane")), [{"lane": lane} for lane in range(LANES)])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("processor_lanes")
    op.drop_index("ix_event_queue_lane", table_name="event_queue")
    op.drop_table("event_queue")
    op.drop_column("sales_system_integration_events", "processed_at")
    op.drop_column("sales_system_integration_events", "order_key")
