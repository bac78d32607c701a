"""Postmortems and their action items.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported from orchestrator.store.schema (see 0001).
TS = sa.DateTime(timezone=True)


def _incident_fk(primary_key: bool = False) -> sa.Column[int]:
    return sa.Column(
        "incident_number",
        sa.Integer,
        sa.ForeignKey("incidents.number", deferrable=True, initially="DEFERRED"),
        nullable=False,
        primary_key=primary_key,
        autoincrement=False,
    )


def upgrade() -> None:
    op.create_table(
        "postmortems",
        _incident_fk(primary_key=True),
        sa.Column("markdown", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column("approved_by", sa.Text, nullable=False, server_default=""),
        sa.Column("approved_at", TS, nullable=True),
    )
    op.create_table(
        "action_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _incident_fk(),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("due", sa.Date, nullable=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("link", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("closed_by", sa.Text, nullable=False, server_default=""),
        sa.Column("evidence", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_action_items_incident_number", "action_items", ["incident_number"])
    op.create_index("ix_action_items_status_due", "action_items", ["status", "due"])


def downgrade() -> None:
    op.drop_table("action_items")
    op.drop_table("postmortems")
