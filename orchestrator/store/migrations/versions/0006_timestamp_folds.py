"""Each incident's canonical-timestamp fold, so metrics read one row per incident.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported from orchestrator.store.schema (see 0001).
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "timestamp_folds",
        sa.Column(
            "incident_number",
            sa.Integer,
            sa.ForeignKey("incidents.number", deferrable=True, initially="DEFERRED"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("declared_at", TS, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("stamps", sa.JSON, nullable=False),
        sa.Column("figures", sa.JSON, nullable=False),
    )
    op.create_index("ix_timestamp_folds_declared_at", "timestamp_folds", ["declared_at"])


def downgrade() -> None:
    op.drop_index("ix_timestamp_folds_declared_at", table_name="timestamp_folds")
    op.drop_table("timestamp_folds")
