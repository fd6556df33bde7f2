"""The operator console: an audit table of operator actions, and stewards' mapping drafts.

``operator_actions`` records every state change a person makes (through the operator API, the
console or the command line): who (the provider's subject and the name), what, on which object,
with the reason given, and when. ``mapping_drafts`` keeps a steward's edited mapping files between
the edit, the preview, the impact and the deploy. An index on ``received_at`` serves the newest
events of every system first (the console's and the API's event pages) without sorting a month.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the two tables, and the index of the newest events of every system."""
    op.create_index(
        "ix_sales_system_integration_events_received", "sales_system_integration_events", ["received_at"]
    )
    op.create_table(
        "operator_actions",
        sa.Column("action_id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("acted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column(
            "subject",
            sa.Text(),
            nullable=False,
            comment="the provider's subject (or cli:<user> for the CLI)",
        ),
        sa.Column("name", sa.Text(), nullable=False, comment="the person's name as the provider gave it"),
        sa.Column("action", sa.Text(), nullable=False, comment="e.g. events.dismiss, mappings.deploy"),
        sa.Column("object_type", sa.Text(), nullable=False, comment="event, mapping_revision, draft, poller"),
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True, comment="the reason or deploy message given"),
        sa.Column("detail", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        comment="every state change made by a person through the API, the console or the CLI",
    )
    op.create_index("operator_actions_object", "operator_actions", ["object_type", "object_id"])
    op.create_index("operator_actions_acted_at", "operator_actions", ["acted_at"])
    op.create_table(
        "mapping_drafts",
        sa.Column("draft_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "base_revision", sa.Integer(), nullable=True, comment="the deployed revision it started from"
        ),
        sa.Column("files", postgresql.JSONB(), nullable=False, comment="relative path -> file text, edited"),
        sa.Column("created_by", sa.Text(), nullable=False, comment="subject of the steward who started it"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column(
            "deployed_as", sa.Integer(), nullable=True, comment="the revision it became, once deployed"
        ),
        comment="a steward's edits of the mapping files, previewed and checked before a deploy",
    )


def downgrade() -> None:
    """Drop the two tables and the index."""
    op.drop_index("ix_sales_system_integration_events_received", table_name="sales_system_integration_events")
    op.drop_table("mapping_drafts")
    op.drop_index("operator_actions_acted_at", table_name="operator_actions")
    op.drop_index("operator_actions_object", table_name="operator_actions")
    op.drop_table("operator_actions")
