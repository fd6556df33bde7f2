"""Kafka dead letters: one row per inbound Kafka record forwarded to the dead-letter topic.

The order-event consumer writes a row once the dead-letter topic acknowledged a record (``event_id``:
the recorded event that keeps the record's bytes; the record's source topic, partition and offset;
whether the dead letter carries the bytes, ``full``, or only refers to the event, ``reference``;
where the dead letter went). A record consumed again, after a retried round or a consumer killed
before its offset commit, is found here and not forwarded a second time.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "kafka_dead_letters",
        sa.Column("event_id", sa.UUID(), nullable=False, comment="the recorded event: its bytes"),
        sa.Column("source_topic", sa.Text(), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column(
            "form", sa.String(length=16), nullable=False, comment="full: the record's bytes; reference: none"
        ),
        sa.Column("topic", sa.Text(), nullable=False, comment="the dead-letter topic"),
        sa.Column("kafka_partition", sa.Integer(), nullable=False),
        sa.Column("kafka_offset", sa.BigInteger(), nullable=False),
        sa.Column(
            "dead_lettered_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint("form IN ('full', 'reference')", name=op.f("ck_kafka_dead_letters_form")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_kafka_dead_letters")),
        comment="one row per inbound Kafka record on the dead-letter topic; one found here is not sent again",
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("kafka_dead_letters")
