"""The trace an incident, an action and a timer belong to (W3C traceparent), so that what
happens to an alert later (deliveries, escalations, a Slack button) joins its trace.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("incidents", "outbox", "timers"):
        op.add_column(table, sa.Column("trace", sa.String(64), nullable=True))


def downgrade() -> None:
    for table in ("timers", "outbox", "incidents"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("trace")
