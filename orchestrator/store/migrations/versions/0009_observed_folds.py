"""Which incidents' durations the service has recorded in its TTA/TTR histograms: each is
recorded once, by whichever replica claims it, when the incident is over.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported (see 0001): the statuses an incident is still open in.
OPEN = ("triggered", "acknowledged", "mitigated")


def upgrade() -> None:
    op.add_column(
        "timestamp_folds",
        sa.Column("observed", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    # Incidents already over were reported before this release; recording them now would
    # pour the whole history into the histograms at the first round after the upgrade.
    folds = sa.table("timestamp_folds", sa.column("incident_number"), sa.column("observed"))
    incidents = sa.table("incidents", sa.column("number"), sa.column("status"))
    still_open = sa.select(incidents.c.number).where(incidents.c.status.in_(OPEN))
    op.execute(
        folds.update()
        .where(folds.c.incident_number.not_in(still_open))
        .values(observed=sa.true())
    )
    op.create_index(
        "ix_timestamp_folds_unobserved",
        "timestamp_folds",
        ["incident_number"],
        postgresql_where=sa.text("NOT observed"),
        sqlite_where=sa.text("NOT observed"),
    )


def downgrade() -> None:
    op.drop_index("ix_timestamp_folds_unobserved", table_name="timestamp_folds")
    with op.batch_alter_table("timestamp_folds") as batch:
        batch.drop_column("observed")
