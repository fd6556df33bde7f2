"""The four tables every event writes lose their foreign keys; the pipeline keeps the invariants.

Each foreign-key check on insert takes a ``FOR KEY SHARE`` row lock on the referenced row (a tuple
header write, WAL, and under concurrent writers a MultiXact on the same few ``sales_systems``
rows), and the deferred check of the idempotency key against its partitioned event table ran at
every commit. Together they cost a quarter of an order's write time. The rows they protected are
written by one code path, in one transaction (``IngestPipeline.record_many``): the key with its
event, the version with its order. That a system's events and orders name a row of
``sales_systems`` is checked once, when the hub starts (``HubRuntime.open``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.drop_constraint("fk_integration_event_keys_event_id", "integration_event_keys", type_="foreignkey")
    op.drop_constraint("fk_service_order_versions_hub_order_id", "service_order_versions", type_="foreignkey")
    op.drop_constraint("fk_service_orders_source_system", "service_orders", type_="foreignkey")
    op.drop_constraint(
        "fk_sales_system_integration_events_source_system",
        "sales_system_integration_events",
        type_="foreignkey",
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.create_foreign_key(
        "fk_sales_system_integration_events_source_system",
        "sales_system_integration_events",
        "sales_systems",
        ["source_system"],
        ["code"],
    )
    op.create_foreign_key(
        "fk_service_orders_source_system", "service_orders", "sales_systems", ["source_system"], ["code"]
    )
    op.create_foreign_key(
        "fk_service_order_versions_hub_order_id",
        "service_order_versions",
        "service_orders",
        ["hub_order_id"],
        ["hub_order_id"],
    )
    op.create_foreign_key(
        "fk_integration_event_keys_event_id",
        "integration_event_keys",
        "sales_system_integration_events",
        ["event_id", "received_at"],
        ["event_id", "received_at"],
        deferrable=True,
        initially="DEFERRED",
    )
