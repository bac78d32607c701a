"""Initial schema: incidents, the append-only timeline, alerts, outbox, timers, dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-01-01 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported from orchestrator.store.schema: a migration must keep creating
# the schema of its own revision however schema.py changes later.
TS = sa.DateTime(timezone=True)


def _incident_fk(nullable: bool = False) -> sa.Column[int]:
    return sa.Column(
        "incident_number",
        sa.Integer,
        sa.ForeignKey("incidents.number", deferrable=True, initially="DEFERRED"),
        nullable=nullable,
    )


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("max_severity", sa.String(16), nullable=False),
        sa.Column("playbook", sa.Text, nullable=False),
        sa.Column("playbook_version", sa.Text, nullable=False),
        sa.Column("group_key", sa.Text, nullable=False),
        sa.Column("group_labels", sa.JSON, nullable=False),
        sa.Column("declared_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("team", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("is_drill", sa.Boolean, nullable=False),
        sa.Column("firing", sa.JSON, nullable=False),
        sa.Column("cycle", sa.Integer, nullable=False),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("mitigated_at", TS, nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("links", sa.JSON, nullable=False),
    )
    op.create_index("ix_incidents_group_key_declared_at", "incidents", ["group_key", "declared_at"])
    op.create_index("ix_incidents_status", "incidents", ["status"])

    op.create_table(
        "timeline",
        _incident_fk(),
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("actor", sa.JSON, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("incident_number", "seq", name="pk_timeline"),
    )

    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("starts_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("disposition", sa.String(32), nullable=False),
        sa.Column("playbook", sa.Text, nullable=True),
        _incident_fk(nullable=True),
    )
    op.create_index("ix_alerts_incident_number", "alerts", ["incident_number"])

    op.create_table(
        "outbox",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        _incident_fk(),
        sa.Column("is_drill", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("claimed_until", TS, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("result", sa.JSON, nullable=False),
    )
    op.create_index("ix_outbox_status_next_attempt_at", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_incident_number", "outbox", ["incident_number"])

    op.create_table(
        "timers",
        sa.Column("key", sa.Text, primary_key=True),
        _incident_fk(),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("claimed_until", TS, nullable=True),
        sa.Column("fired_at", TS, nullable=True),
        sa.Column("cancelled_at", TS, nullable=True),
    )
    op.create_index("ix_timers_status_due_at", "timers", ["status", "due_at"])
    op.create_index("ix_timers_incident_number", "timers", ["incident_number"])

    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("received_at", TS, nullable=False),
    )

    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )
    op.bulk_insert(counters, [{"name": "incident", "value": 0}])

    _create_append_only_guard()


def _create_append_only_guard() -> None:
    """The database itself refuses to change or delete timeline rows, whatever the client does."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION timeline_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'timeline is append-only' USING ERRCODE = 'restrict_violation';
            END;
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER timeline_append_only BEFORE UPDATE OR DELETE ON timeline "
            "FOR EACH ROW EXECUTE FUNCTION timeline_append_only()"
        )
    elif op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER timeline_no_{event.lower()} BEFORE {event} ON timeline "
                "BEGIN SELECT RAISE(ABORT, 'timeline is append-only'); END"
            )
    else:
        raise NotImplementedError(f"no append-only guard for {op.get_bind().dialect.name}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS timeline_append_only ON timeline")
        op.execute("DROP FUNCTION IF EXISTS timeline_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS timeline_no_update")
        op.execute("DROP TRIGGER IF EXISTS timeline_no_delete")
    for table in (
        "counters",
        "dead_letters",
        "timers",
        "outbox",
        "alerts",
        "timeline",
        "incidents",
    ):
        op.drop_table(table)
