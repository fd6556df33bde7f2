"""Pollers: cursors of the polled feeds, one row per run, and each polled system's state.

``poll_cursors`` holds, per system and stream (``incremental``, or a ``backfill`` with its window),
the position after the last page recorded, as the source wrote it (change time, tie-breaker key,
continuation token); it moves in the transaction that records that page. ``poll_runs`` records each
run (started, finished, pages, orders, errors); ``poller_state`` a system's failures in a row, its
pause and last error, and the scheduler's next run, for ``saleshub poll status``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STREAMS = "stream IN ('incremental', 'backfill')"


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "poll_cursors",
        sa.Column("source_system", sa.String(length=32), nullable=False),
        sa.Column(
            "stream",
            sa.String(length=16),
            nullable=False,
            comment="incremental, or backfill (its own window)",
        ),
        sa.Column(
            "updated_at",
            sa.Text(),
            nullable=True,
            comment="change time of the last record read, as the source wrote it",
        ),
        sa.Column(
            "tie", sa.Text(), nullable=True, comment="the key ordering records of that time (ERP HeaderId)"
        ),
        sa.Column("token", sa.Text(), nullable=True, comment="continuation token of an unfinished listing"),
        sa.Column("window_since", sa.DateTime(timezone=True), nullable=True, comment="a backfill's window"),
        sa.Column("window_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pages", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("records", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "caught_up_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="a run last read to the feed's end",
        ),
        sa.Column(
            "finished_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="a backfill read its whole window",
        ),
        sa.Column("advanced_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(_STREAMS, name=op.f("ck_poll_cursors_stream")),
        sa.PrimaryKeyConstraint("source_system", "stream", name=op.f("pk_poll_cursors")),
        comment="where each polled feed stands; moved in the transaction that records the page read",
    )
    op.create_table(
        "poll_runs",
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("source_system", sa.String(length=32), nullable=False),
        sa.Column("stream", sa.String(length=16), nullable=False),
        sa.Column("started_by", sa.String(length=16), nullable=False, comment="schedule or command"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pages", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "orders", sa.Integer(), server_default=sa.text("0"), nullable=False, comment="records read"
        ),
        sa.Column(
            "recorded",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="new events recorded",
        ),
        sa.Column(
            "errors",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="records refused at intake",
        ),
        sa.Column(
            "outcome",
            sa.String(length=16),
            nullable=True,
            comment="completed, failed or stopped; NULL while running",
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(_STREAMS, name=op.f("ck_poll_runs_stream")),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_poll_runs")),
        comment="one row per poller run",
    )
    op.create_index("ix_poll_runs_system_started", "poll_runs", ["source_system", "started_at"], unique=False)
    op.create_table(
        "poller_state",
        sa.Column("source_system", sa.String(length=32), nullable=False),
        sa.Column(
            "failures",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="failed runs in a row",
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "paused_at", sa.DateTime(timezone=True), nullable=True, comment="NULL while the poller runs"
        ),
        sa.Column("paused_reason", sa.Text(), nullable=True),
        sa.Column(
            "next_run_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="as the scheduler last planned it",
        ),
        sa.PrimaryKeyConstraint("source_system", name=op.f("pk_poller_state")),
        comment="per polled system: failures in a row, pause, last error, next scheduled run",
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("poller_state")
    op.drop_index("ix_poll_runs_system_started", table_name="poll_runs")
    op.drop_table("poll_runs")
    op.drop_table("poll_cursors")
