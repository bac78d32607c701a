"""Leasing due work and finishing deliveries: claiming outbox actions and timers (with
`SKIP LOCKED` on PostgreSQL, one incident's lane in order) and recording how a delivery went."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from orchestrator.actions import ActionResult
from orchestrator.store.protocols import OutboxStatus
from orchestrator.store.schema import outbox
from orchestrator.store.transaction import SqlTransaction
from orchestrator.timeline import EntryDraft


def claim(
    conn: Connection,
    table: sa.Table,
    due: sa.Column[Any],
    pending: str,
    now: dt.datetime,
    limit: int,
    lease: dt.timedelta,
    *conditions: sa.ColumnElement[bool],
) -> Sequence[RowMapping]:
    """Leases up to `limit` due pending rows that nobody else holds a live lease on."""
    if limit <= 0:
        return []
    # SKIP LOCKED (PostgreSQL; SQLite has no row locks and ignores it) lets concurrent claimers
    # pass over each other's rows instead of queueing behind them; a row claimed meanwhile fails
    # the WHERE when rechecked, so no key is handed out twice.
    claimable = (
        sa.select(table)
        .where(
            table.c.status == pending,
            due <= now,
            sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until <= now),
            *conditions,
        )
        .order_by(due, table.c.key)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    found = conn.execute(claimable).mappings().all()
    if found:
        conn.execute(
            sa.update(table)
            .where(table.c.key.in_([row["key"] for row in found]))
            .values(claimed_until=now + lease)
        )
    return found


def of_drill(table: sa.Table, drill_id: str | None) -> sa.ColumnElement[bool]:
    """Real work (`drill_id` None) or one drill's: a drill's actions and timers are never the
    service's to deliver or fire, and a real page never goes through a drill's sandbox."""
    column = table.c.drill_id
    return column.is_(None) if drill_id is None else column == drill_id


def first_in_lane() -> sa.ColumnElement[bool]:
    """An action is deliverable only when no earlier action of its incident and lane is still
    pending (waiting for a retry, or leased by a dispatcher): a Slack outage holds the
    incident's later Slack actions back, and they go out in order once it ends. A failed
    action does not block the ones after it."""
    earlier = outbox.alias("earlier")
    return ~sa.exists().where(
        earlier.c.incident_number == outbox.c.incident_number,
        earlier.c.lane == outbox.c.lane,
        earlier.c.status == OutboxStatus.PENDING.value,
        earlier.c.ordinal < outbox.c.ordinal,
    )


def finish_action(
    conn: Connection,
    key: str,
    result: ActionResult,
    now: dt.datetime,
    retry_at: dt.datetime | None,
    timeline: list[EntryDraft],
) -> None:
    incident_number = conn.scalar(sa.select(outbox.c.incident_number).where(outbox.c.key == key))
    if incident_number is None:
        raise KeyError(f"no action {key!r} in the outbox")
    txn = SqlTransaction(conn)
    txn.lock_incident(incident_number)
    values: dict[str, Any] = {"attempts": outbox.c.attempts + 1, "claimed_until": None}
    if result.ok:
        values |= {"status": OutboxStatus.DELIVERED.value, "delivered_at": now, "last_error": ""}
    elif retry_at is not None:
        values |= {"next_attempt_at": retry_at, "last_error": result.detail}
    else:
        values |= {"status": OutboxStatus.FAILED.value, "last_error": result.detail}
    if result.data:
        values["result"] = result.data
    # Only a pending item changes: a late finish from a dispatcher whose lease expired must not
    # turn a delivered action back into a retry. Its attempt still goes on the timeline,
    # because it happened.
    conn.execute(
        sa.update(outbox)
        .where(outbox.c.key == key, outbox.c.status == OutboxStatus.PENDING.value)
        .values(values)
    )
    txn.append_timeline(incident_number, timeline, now)
    txn.flush()
