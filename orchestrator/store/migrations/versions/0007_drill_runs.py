"""Drill runs, and the drill id on a drill's incidents, actions and timers.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported from orchestrator.store.schema (see 0001).
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # NULL: a real incident, action or timer. Nullable columns are added in place by both
    # databases, with no table rebuild.
    op.add_column("incidents", sa.Column("drill_id", sa.Text, nullable=True))
    op.create_index("ix_incidents_drill_id", "incidents", ["drill_id"])
    op.add_column("outbox", sa.Column("drill_id", sa.Text, nullable=True))
    op.add_column("timers", sa.Column("drill_id", sa.Text, nullable=True))
    op.create_table(
        "drill_runs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("scenario_id", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("scenario_sha256", sa.String(64), nullable=False),
        sa.Column("scenario", sa.Text, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("clock_start", TS, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
    )
    op.create_index("ix_drill_runs_scenario_id", "drill_runs", ["scenario_id"])


def downgrade() -> None:
    op.drop_index("ix_drill_runs_scenario_id", "drill_runs")
    op.drop_table("drill_runs")
    with op.batch_alter_table("timers") as batch:
        batch.drop_column("drill_id")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("drill_id")
    op.drop_index("ix_incidents_drill_id", "incidents")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("drill_id")
