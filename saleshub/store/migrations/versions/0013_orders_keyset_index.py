"""Keyset pages of orders: an index on (updated_at, hub_order_id).

The operator API and the console list orders most recently updated first and page back by the
last row's ``(updated_at, hub_order_id)``; this index serves every page of every system from its
key without sorting the table (a system's pages use ``ix_service_orders_system_updated``).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the index of the newest orders."""
    op.create_index("ix_service_orders_updated", "service_orders", ["updated_at", "hub_order_id"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_service_orders_updated", table_name="service_orders")
