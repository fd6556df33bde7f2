"""Relay state: outbox lanes are leased (not locked) while published, and the broker's reachability.

A relay used to hold its lanes' row locks, in one open transaction, for the whole time it waited on
the broker (up to the delivery timeout). Now it leases them: ``leased_by`` (the relay) and
``leased_until`` (a crashed relay's lease expires) are set in a short transaction, the records are
produced and acknowledged outside any transaction, and a second short transaction records the
outcome and ends the lease. ``kafka_broker_state`` is one row: since when the relays have found the
broker unreachable (``NULL``: reachable), the last probe error and when a relay last checked, for
``saleshub status``.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
# Re-chain to "0005" (reconciliation) when both branches are merged.
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_LOCKED = "one row per lane; a relay holds a lane's row lock while it publishes that lane"
_LEASED = "one row per lane; a relay leases a lane while it publishes that lane's oldest events"


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column(
        "outbox_lanes",
        sa.Column("leased_by", sa.UUID(), nullable=True, comment="the relay publishing this lane"),
    )
    op.add_column(
        "outbox_lanes",
        sa.Column(
            "leased_until",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="the lease ends here even if its relay died",
        ),
    )
    op.create_table_comment(
        "outbox_lanes",
        _LEASED,
        existing_comment=_LOCKED,
    )
    op.create_table(
        "kafka_broker_state",
        sa.Column("singleton", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "unreachable_since",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="first failed probe of the current outage; NULL while the broker answers",
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True, comment="the last probe"),
        sa.CheckConstraint("singleton", name=op.f("ck_kafka_broker_state_singleton")),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_kafka_broker_state")),
        comment="one row: whether the relays can reach the Kafka broker, for saleshub status",
    )
    op.execute("INSERT INTO kafka_broker_state (singleton) VALUES (true)")


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("kafka_broker_state")
    op.create_table_comment(
        "outbox_lanes",
        _LOCKED,
        existing_comment=_LEASED,
    )
    op.drop_column("outbox_lanes", "leased_until")
    op.drop_column("outbox_lanes", "leased_by")
