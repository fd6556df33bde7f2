"""Events by data key: an index on ``sales_system_integration_events.data_key_id``.

An erasure (``saleshub privacy erase``, and each batch of ``saleshub db retention``) counts every
event sealed with the keys it destroys, also one never linked to an order (quarantined before it
was mapped). Without this index that is a scan of the whole event table per erasure. Created on
the partitioned table, so on every monthly partition, present and future.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the index of events by data key."""
    op.create_index(
        "ix_sales_system_integration_events_data_key", "sales_system_integration_events", ["data_key_id"]
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_sales_system_integration_events_data_key", table_name="sales_system_integration_events")
