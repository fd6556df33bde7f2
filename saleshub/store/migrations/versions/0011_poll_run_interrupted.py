"""Poll runs: ``interrupted``, the outcome of a run whose process died, set by the feed's next run.

Only the column's comment changes (``poll_runs.outcome`` has no check constraint).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = "completed, failed or stopped; NULL while running"
_AFTER = "completed, failed, stopped or interrupted (its process died); NULL while running"


def upgrade() -> None:
    """Name ``interrupted`` in the comment of ``poll_runs.outcome``."""
    op.alter_column(
        "poll_runs", "outcome", existing_type=sa.String(16), comment=_AFTER, existing_comment=_BEFORE
    )


def downgrade() -> None:
    """Interrupted runs become failed ones; the comment as it was."""
    op.execute("UPDATE poll_runs SET outcome = 'failed' WHERE outcome = 'interrupted'")
    op.alter_column(
        "poll_runs", "outcome", existing_type=sa.String(16), comment=_BEFORE, existing_comment=_AFTER
    )
