"""Linking across systems and channels: customer records and their links, cross-system conflicts.

``customer_records`` holds one normalised customer per order (personal data: it stays in the
database; reports show it masked), the cluster (one customer) it belongs to and the order's
fingerprint when it was normalised, so a nightly run links only new or changed orders.
``customer_links`` keeps each accepted link with its score and evidence (which fields agreed, at
what level, with what weight). ``cross_system_conflicts`` holds, per run, the orders reported by two
systems (matched through a declared cross-reference) that disagree, both sides field by field.
``reconciliation_runs.figures`` keeps the operational figures a cross-system run computed.

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0009"
# Re-chain to "0008" when the branches of 0007 and 0008 are merged.
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PERSONAL = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "name_key",
    "postal_code",
    "street",
    "house_number",
    "city",
)


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column(
        "reconciliation_runs",
        sa.Column(
            "figures",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="operational figures of the window (cross-system runs)",
        ),
    )
    op.create_table(
        "customer_records",
        sa.Column("record_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("hub_order_id", sa.UUID(), nullable=False),
        sa.Column("source_system", sa.String(length=32), nullable=False),
        sa.Column("external_order_id", sa.Text(), nullable=False),
        sa.Column("sales_channel", sa.String(length=16), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("bu_code", sa.String(length=16), nullable=False),
        sa.Column("order_fingerprint", sa.BigInteger(), nullable=False, comment="the order when normalised"),
        *[sa.Column(name, sa.Text(), nullable=True) for name in _PERSONAL],
        sa.Column(
            "cluster_id", sa.BigInteger(), nullable=False, comment="the customer: its lowest record id"
        ),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_customer_records")),
        sa.UniqueConstraint("hub_order_id", name=op.f("uq_customer_records_hub_order_id")),
        comment="one normalised customer per order (personal data: never leaves the database unmasked)",
    )
    op.create_index("ix_customer_records_email", "customer_records", ["email"])
    op.create_index("ix_customer_records_phone", "customer_records", ["phone"])
    op.create_index("ix_customer_records_postal_code", "customer_records", ["postal_code", "house_number"])
    op.create_index("ix_customer_records_name_key", "customer_records", ["name_key", "postal_code"])
    op.create_index("ix_customer_records_cluster_id", "customer_records", ["cluster_id"])
    op.create_table(
        "customer_links",
        sa.Column("record_l", sa.BigInteger(), nullable=False),
        sa.Column("record_r", sa.BigInteger(), nullable=False),
        sa.Column("match_probability", sa.Double(), nullable=False),
        sa.Column("match_weight", sa.Double(), nullable=False),
        sa.Column(
            "evidence",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="{field: {level, weight}}",
        ),
        sa.Column("run_id", sa.UUID(), nullable=True),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("record_l", "record_r", name=op.f("pk_customer_links")),
        comment="two customer records found to be one customer, with the score and its evidence",
    )
    op.create_index("ix_customer_links_run_id", "customer_links", ["run_id"])
    op.create_table(
        "cross_system_conflicts",
        sa.Column("conflict_id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False, comment="the declared cross-reference"),
        sa.Column("reference_value", sa.Text(), nullable=False),
        sa.Column("left_system", sa.String(length=32), nullable=False),
        sa.Column("left_external_order_id", sa.Text(), nullable=False),
        sa.Column("left_hub_order_id", sa.UUID(), nullable=False),
        sa.Column("right_system", sa.String(length=32), nullable=False),
        sa.Column("right_external_order_id", sa.Text(), nullable=False),
        sa.Column("right_hub_order_id", sa.UUID(), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=True),
        sa.Column("bu_code", sa.String(length=16), nullable=True),
        sa.Column("sales_channel", sa.String(length=16), nullable=True),
        sa.Column(
            "categories",
            postgresql.ARRAY(sa.Text()),
            nullable=False,
            comment="amount, status, dates, lines, …",
        ),
        sa.Column(
            "differences",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="[{field, left, right, rule}]",
        ),
        sa.Column(
            "first_seen_at", sa.DateTime(timezone=True), nullable=False, comment="open since (earlier runs)"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.run_id"],
            name=op.f("fk_cross_system_conflicts_run_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conflict_id", name=op.f("pk_cross_system_conflicts")),
        comment="one order reported by two systems that disagree, per cross-system run",
    )
    op.create_index("ix_cross_system_conflicts_run_id", "cross_system_conflicts", ["run_id"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_cross_system_conflicts_run_id", table_name="cross_system_conflicts")
    op.drop_table("cross_system_conflicts")
    op.drop_index("ix_customer_links_run_id", table_name="customer_links")
    op.drop_table("customer_links")
    for name in ("cluster_id", "name_key", "postal_code", "phone", "email"):
        op.drop_index(f"ix_customer_records_{name}", table_name="customer_records")
    op.drop_table("customer_records")
    op.drop_column("reconciliation_runs", "figures")
