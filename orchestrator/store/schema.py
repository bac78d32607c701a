"""The store's tables as SQLAlchemy Core metadata: what migrations build and SqlStore queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A timestamp that only accepts aware datetimes and always comes back as aware UTC.

    PostgreSQL keeps the instant in TIMESTAMPTZ. SQLite has no time zones, so it stores naive
    UTC text in a fixed format, which also keeps text comparisons in queries chronological.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes timezone-aware times")
        utc = value.astimezone(dt.UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # One step instead of this decorator's conversion followed by SQLite's own formatter:
        # timestamps are on every row the pipeline writes. The text is exactly what SQLAlchemy's
        # SQLite DATETIME stores ("2026-01-31 23:59:59.000001"), so old rows compare the same.
        def to_text(value: dt.datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is not dt.UTC:  # nearly every time here is UTC already
                if value.tzinfo is None or value.utcoffset() is None:
                    raise ValueError(
                        f"naive datetime {value!r}: the store only takes timezone-aware times"
                    )
                value = value.astimezone(dt.UTC)
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")

        return to_text

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def from_text(value: str | None) -> dt.datetime | None:
            if value is None:
                return None
            return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)

        return from_text

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# Foreign keys are checked at commit so that a transaction may write an incident's rows in any
# order; they still guarantee nothing refers to an incident that does not exist.
def _incident_fk(nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(
        "incident_number",
        sa.Integer,
        sa.ForeignKey("incidents.number", deferrable=True, initially="DEFERRED"),
        nullable=nullable,
    )


def _incident_key() -> sa.Column[Any]:
    """The incident a table has one row for, as its primary key."""
    return sa.Column(
        "incident_number",
        sa.Integer,
        sa.ForeignKey("incidents.number", deferrable=True, initially="DEFERRED"),
        primary_key=True,
        autoincrement=False,
    )


metadata = sa.MetaData()

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("max_severity", sa.String(16), nullable=False),
    sa.Column("playbook", sa.Text, nullable=False),
    sa.Column("playbook_version", sa.Text, nullable=False),
    sa.Column("group_key", sa.Text, nullable=False),
    sa.Column("group_labels", sa.JSON, nullable=False),
    sa.Column("declared_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("team", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("is_drill", sa.Boolean, nullable=False),
    sa.Column("firing", sa.JSON, nullable=False),
    sa.Column("cycle", sa.Integer, nullable=False),
    sa.Column("acknowledged_at", UtcDateTime, nullable=True),
    sa.Column("mitigated_at", UtcDateTime, nullable=True),
    sa.Column("resolved_at", UtcDateTime, nullable=True),
    sa.Column("closed_at", UtcDateTime, nullable=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("links", sa.JSON, nullable=False),
    sa.Column("commander", sa.Text, nullable=False, server_default=""),
    sa.Column("policy", sa.JSON, nullable=True),  # its escalation policy, as it triggered
    # The drill run it belongs to; NULL for real incidents (see drill_runs).
    sa.Column("drill_id", sa.Text, nullable=True),
    # The W3C traceparent of the alert that opened it: later work on it joins that trace.
    sa.Column("trace", sa.String(64), nullable=True),
    sa.Index("ix_incidents_group_key_declared_at", "group_key", "declared_at"),
    sa.Index("ix_incidents_status", "status"),
    sa.Index("ix_incidents_drill_id", "drill_id"),
)

# Plain JSON rather than JSONB on PostgreSQL: the stored text must give back exactly the values
# that were hashed, and JSONB normalises numbers.
timeline = sa.Table(
    "timeline",
    metadata,
    _incident_fk(),
    sa.Column("seq", sa.Integer, nullable=False, autoincrement=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("actor", sa.JSON, nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.PrimaryKeyConstraint("incident_number", "seq", name="pk_timeline"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("starts_at", UtcDateTime, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("disposition", sa.String(32), nullable=False),
    sa.Column("playbook", sa.Text, nullable=True),
    _incident_fk(nullable=True),
    sa.Index("ix_alerts_incident_number", "incident_number"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    _incident_fk(),
    sa.Column("is_drill", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("claimed_until", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
    sa.Column("result", sa.JSON, nullable=False),
    # Delivery order: within one incident, a lane's (one vendor's) actions go out one after
    # another, in (created_at, ordinal) order.
    sa.Column("lane", sa.Text, nullable=False, server_default=""),
    sa.Column("ordinal", sa.Integer, nullable=False, server_default="0"),
    # A drill's actions are delivered only by that drill's runner, through its sandbox.
    sa.Column("drill_id", sa.Text, nullable=True),
    sa.Column("trace", sa.String(64), nullable=True),  # the delivery's span joins this trace
    sa.Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    sa.Index("ix_outbox_incident_number", "incident_number"),
    sa.Index("ix_outbox_incident_lane", "incident_number", "lane", "status"),
)

timers = sa.Table(
    "timers",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    _incident_fk(),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("claimed_until", UtcDateTime, nullable=True),
    sa.Column("fired_at", UtcDateTime, nullable=True),
    sa.Column("cancelled_at", UtcDateTime, nullable=True),
    sa.Column("drill_id", sa.Text, nullable=True),  # fired only by that drill's runner
    sa.Column("trace", sa.String(64), nullable=True),  # the firing's span joins this trace
    sa.Index("ix_timers_status_due_at", "status", "due_at"),
    sa.Index("ix_timers_incident_number", "incident_number"),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("raw", sa.LargeBinary, nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
)

# One row per sequence; the row lock taken by its UPDATE is what makes incident numbers gap-free.
counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)

INCIDENT_COUNTER = "incident"

# Signed checkpoints over the chain heads (report/checkpoints.py); append-only like the timeline.
checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("heads", sa.JSON, nullable=False),
    sa.Column("previous", sa.String(64), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("signature", sa.String(128), nullable=False),
    sa.Column("public_key", sa.String(64), nullable=False),
)

# Each incident's canonical timestamps as a fold over its timeline up to `seq`
# (report/timestamps.py): derived data, brought up to date from the timeline before metrics
# read it (store/folds.py), and rebuilt from the timeline on demand.
timestamp_folds = sa.Table(
    "timestamp_folds",
    metadata,
    _incident_key(),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("declared_at", UtcDateTime, nullable=False),
    sa.Column("state", sa.JSON, nullable=False),  # to take the fold up again
    sa.Column("stamps", sa.JSON, nullable=False),  # its result (report/timestamps.py)
    sa.Column("figures", sa.JSON, nullable=False),  # what metrics need of it (report/metrics.py)
    # Its durations are in the service's histograms, or it was over before they existed.
    sa.Column("observed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_timestamp_folds_declared_at", "declared_at"),
    sa.Index(
        "ix_timestamp_folds_unobserved",
        "incident_number",
        postgresql_where=sa.text("NOT observed"),
        sqlite_where=sa.text("NOT observed"),
    ),
)

# Follow-up after an incident (report/postmortem.py, report/action_items.py). Rows here are the
# current state; every change is also a timeline entry, which remains the record.
postmortems = sa.Table(
    "postmortems",
    metadata,
    _incident_key(),
    sa.Column("markdown", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False),
    sa.Column("approved_by", sa.Text, nullable=False, server_default=""),
    sa.Column("approved_at", UtcDateTime, nullable=True),
)

action_items = sa.Table(
    "action_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    _incident_fk(),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("due", sa.Date, nullable=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("link", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("closed_at", UtcDateTime, nullable=True),
    sa.Column("closed_by", sa.Text, nullable=False, server_default=""),
    sa.Column("evidence", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_action_items_incident_number", "incident_number"),
    sa.Index("ix_action_items_status_due", "status", "due"),
)


# One row per drill run (orchestrator/drill/): the scenario as written and its hash, how it ran,
# and what it observed and scored. The run's incidents carry its id (incidents.drill_id).
drill_runs = sa.Table(
    "drill_runs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("scenario_id", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("scenario_sha256", sa.String(64), nullable=False),
    sa.Column("scenario", sa.Text, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),  # simulated | live
    sa.Column("state", sa.String(16), nullable=False),  # running | paused | ended
    sa.Column("started_at", UtcDateTime, nullable=False),  # wall clock
    sa.Column("ended_at", UtcDateTime, nullable=True),
    sa.Column("clock_start", UtcDateTime, nullable=False),  # scenario time at offset 0
    sa.Column("result", sa.JSON, nullable=False),  # the run's log, observations and scores
    sa.Index("ix_drill_runs_scenario_id", "scenario_id"),
)
