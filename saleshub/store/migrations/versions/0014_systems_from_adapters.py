"""Sales systems come from the adapters: the event table's transport CHECK goes.

The transport list has one definition, ``canonical.enums.TRANSPORTS`` (the writers' type is its
``Literal``), so a new transport adds no migration; and a sales system's ``sales_systems`` row and
its business-unit links are written from its adapter's metadata when the hub starts with
``migrate`` (``saleshub serve``, ``saleshub db upgrade``), so a new system adds no migration either.
The rows 0001 seeded stay; the next start brings them in line with the adapters.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EVENTS = "sales_system_integration_events"
_TRANSPORT = "ck_sales_system_integration_events_transport"


def upgrade() -> None:
    """Drop the transport CHECK (on the partitioned table, so on every partition)."""
    op.execute(f"ALTER TABLE {_EVENTS} DROP CONSTRAINT IF EXISTS {_TRANSPORT}")


def downgrade() -> None:
    """Put the CHECK back with the four transports of 0001 (fails if a row has another)."""
    op.execute(
        f"ALTER TABLE {_EVENTS} ADD CONSTRAINT {_TRANSPORT} "
        "CHECK (transport IN ('webhook', 'poll', 'kafka', 'replay'))"
    )
