"""Personal data at rest: data keys, sealed columns, the blind index and the erasure register.

Adds ``data_keys`` (one wrapped AES-256 key per order), ``order_data_keys`` (which key an order's
data uses), ``personal_index`` (keyed digests of e-mails, phones and customer references, to find a
subject's orders without clear values) and ``privacy_erasures``; and the columns that say which data
key sealed a row: ``data_key_id`` on events (their ``raw_body``), orders and versions (their new
``personal`` column) and outbox rows (their ``payload``), plus ``service_orders.erased_at``. Rows
written before stay in clear (``data_key_id`` NULL) until ``saleshub privacy encrypt`` seals them.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

# revision identifiers, used by Alembic.
revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the key, index and erasure tables; add the sealed columns (nullable: no rewrite)."""
    op.create_table(
        "data_keys",
        sa.Column("key_id", UUID(as_uuid=True), nullable=False),
        sa.Column(
            "wrapped", sa.LargeBinary, nullable=False, comment="the data key wrapped by the master key"
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("key_id", name="pk_data_keys"),
        comment="one AES-256 data key per order, only wrapped; deleting one erases what it sealed",
    )
    op.create_table(
        "order_data_keys",
        sa.Column("source_system", sa.String(32), nullable=False),
        sa.Column(
            "order_key", sa.Text, nullable=False, comment="the source's order reference (or event:<id>)"
        ),
        sa.Column("key_id", UUID(as_uuid=True), nullable=False),
        sa.PrimaryKeyConstraint("source_system", "order_key", name="pk_order_data_keys"),
        comment="which data key seals an order's events, versions and outbox payloads",
    )
    op.create_index("ix_order_data_keys_key_id", "order_data_keys", ["key_id"])
    op.create_table(
        "personal_index",
        sa.Column("kind", sa.String(16), nullable=False, comment="email, phone, customer_ref"),
        sa.Column("digest", sa.LargeBinary, nullable=False, comment="keyed HMAC of the normalised value"),
        sa.Column("hub_order_id", UUID(as_uuid=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "digest", "hub_order_id", name="pk_personal_index"),
        comment="blind index: finds a subject's orders by e-mail, phone or reference without clear values",
    )
    op.create_index("ix_personal_index_hub_order_id", "personal_index", ["hub_order_id"])
    op.create_table(
        "privacy_erasures",
        sa.Column("erasure_id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column(
            "subject", sa.Text, nullable=False, comment="who erased (the provider's subject or cli:<user>)"
        ),
        sa.Column("reason", sa.Text, nullable=False, comment="the request's reference, e.g. a ticket number"),
        sa.Column("criteria", JSONB, nullable=False, comment="the kinds searched by, never their values"),
        sa.Column("orders", sa.Integer, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("data_keys", sa.Integer, nullable=False),
        sa.Column(
            "detail",
            JSONB,
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
            comment="systems, counts",
        ),
        sa.PrimaryKeyConstraint("erasure_id", name="pk_privacy_erasures"),
        comment="every erasure: who, when, why and how much, without the erased data",
    )
    sealed = "the personal fields, sealed with the data key"
    op.add_column("service_orders", sa.Column("personal", sa.LargeBinary, nullable=True, comment=sealed))
    op.add_column(
        "service_orders",
        sa.Column(
            "data_key_id", UUID(as_uuid=True), nullable=True, comment="NULL: content in clear (not migrated)"
        ),
    )
    op.add_column(
        "service_orders",
        sa.Column(
            "erased_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="its subject's data keys destroyed",
        ),
    )
    op.add_column(
        "service_order_versions", sa.Column("personal", sa.LargeBinary, nullable=True, comment=sealed)
    )
    op.add_column("service_order_versions", sa.Column("data_key_id", UUID(as_uuid=True), nullable=True))
    op.add_column(
        "sales_system_integration_events",
        sa.Column(
            "data_key_id", UUID(as_uuid=True), nullable=True, comment="raw_body sealed with it; NULL: clear"
        ),
    )
    op.add_column(
        "event_outbox",
        sa.Column(
            "data_key_id", UUID(as_uuid=True), nullable=True, comment="payload sealed with it; NULL: clear"
        ),
    )


def downgrade() -> None:
    """Drop them again (sealed rows become unreadable: decrypt first with the previous release)."""
    op.drop_column("event_outbox", "data_key_id")
    op.drop_column("sales_system_integration_events", "data_key_id")
    op.drop_column("service_order_versions", "data_key_id")
    op.drop_column("service_order_versions", "personal")
    for column in ("erased_at", "data_key_id", "personal"):
        op.drop_column("service_orders", column)
    for table in ("privacy_erasures", "personal_index", "order_data_keys", "data_keys"):
        op.drop_table(table)
