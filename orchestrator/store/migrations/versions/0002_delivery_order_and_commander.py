"""Delivery order for the outbox (lane, ordinal) and the incident commander.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch_alter_table: SQLite cannot add NOT NULL columns in place under every version.
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lane", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("ordinal", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_outbox_incident_lane", "outbox", ["incident_number", "lane", "status"])
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("commander", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("commander")
    op.drop_index("ix_outbox_incident_lane", "outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("ordinal")
        batch.drop_column("lane")
