"""Reconciliation: runs and their findings, and the index a run reads a system's window with.

``reconciliation_runs`` holds one row per comparison of a source system's manifest with the hub
(window, grace period, counts by kind, rows read and skipped); ``reconciliation_findings`` one row
per discrepancy, with both sides' version, time and fingerprint, the field differences of a content
mismatch, and since when the discrepancy has been open. ``ix_service_orders_reconcile`` covers what
the comparison reads of an order, so a window of a system is an index-only range scan.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = (  # saleshub.store.tables.RECONCILIATION_KINDS at the time of this migration
    "missing_in_hub",
    "missing_in_source",
    "hub_stale",
    "source_stale",
    "content_mismatch",
    "duplicate_in_source",
    "invalid_manifest_row",
)


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index(
        "ix_service_orders_reconcile",
        "service_orders",
        ["source_system", "source_updated_at"],
        unique=False,
        postgresql_include=["external_order_id", "fingerprint", "source_version"],
    )
    op.create_table(
        "reconciliation_runs",
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("source_system", sa.String(length=32), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("grace_seconds", sa.Integer(), nullable=False),
        sa.Column(
            "manifest", sa.Text(), nullable=False, comment="where the source's manifest came from (no path)"
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "counts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
            comment="findings by kind",
        ),
        sa.Column(
            "stats",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
            comment="rows read, skipped",
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')", name=op.f("ck_reconciliation_runs_status")
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_reconciliation_runs")),
        comment="one row per comparison of a source system's manifest with the hub",
    )
    op.create_index(
        "ix_reconciliation_runs_system_started",
        "reconciliation_runs",
        ["source_system", "started_at"],
        unique=False,
    )
    kinds = ", ".join(f"'{kind}'" for kind in KINDS)
    op.create_table(
        "reconciliation_findings",
        sa.Column("finding_id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("external_order_id", sa.Text(), nullable=False),
        sa.Column("hub_order_id", sa.UUID(), nullable=True),
        sa.Column("country_code", sa.String(length=2), nullable=True),
        sa.Column("bu_code", sa.String(length=16), nullable=True),
        sa.Column("sales_channel", sa.String(length=16), nullable=True),
        sa.Column("source_version", sa.BigInteger(), nullable=True),
        sa.Column("hub_version", sa.BigInteger(), nullable=True),
        sa.Column("source_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hub_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_fingerprint", sa.BigInteger(), nullable=True),
        sa.Column("hub_fingerprint", sa.BigInteger(), nullable=True),
        sa.Column(
            "field_differences",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="[{field, hub, source, rule}]",
        ),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="open since (earlier runs)",
        ),
        sa.CheckConstraint(f"kind IN ({kinds})", name=op.f("ck_reconciliation_findings_kind")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.run_id"],
            name=op.f("fk_reconciliation_findings_run_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("finding_id", name=op.f("pk_reconciliation_findings")),
        comment="one row per discrepancy found by a reconciliation run",
    )
    op.create_index(
        "ix_reconciliation_findings_run_id",
        "reconciliation_findings",
        ["run_id", "kind", "external_order_id"],
        unique=False,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_reconciliation_findings_run_id", table_name="reconciliation_findings")
    op.drop_table("reconciliation_findings")
    op.drop_index("ix_reconciliation_runs_system_started", table_name="reconciliation_runs")
    op.drop_table("reconciliation_runs")
    op.drop_index("ix_service_orders_reconcile", table_name="service_orders")
