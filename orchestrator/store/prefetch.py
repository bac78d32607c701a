"""Whole-batch reads for a transaction about to touch many incidents: the incidents locked in
one statement (in number order, as every writer locks them), their chain heads and outbox
ordinals in one query each, instead of a few queries per incident."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from orchestrator.incident.model import Incident
from orchestrator.store import rows
from orchestrator.store.schema import incidents, outbox, timeline
from orchestrator.store.schema import timers as timers_table
from orchestrator.timers import TimerStatus


@dataclass(frozen=True)
class _Statements:
    lock_all: sa.Select[Any]
    heads: sa.Select[Any]
    ordinals: sa.Select[Any]
    fire: sa.Update


def _among(
    column: sa.ColumnElement[Any], name: str, item: sa.types.TypeEngine[Any], postgres: bool
) -> Any:
    """`column IN (...)`: on PostgreSQL one array parameter (`= ANY(:name)`), so a batch's
    statement has the same text whatever its size and the driver's caches keep it; SQLite gets
    the list spelled out."""
    if postgres:
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(item)))
    return column.in_(sa.bindparam(name, expanding=True))


@functools.cache
def _statements(postgres: bool) -> _Statements:
    def numbers(column: sa.ColumnElement[Any]) -> Any:
        return _among(column, "numbers", sa.Integer(), postgres)

    newest = (
        sa.select(timeline.c.incident_number, sa.func.max(timeline.c.seq).label("seq"))
        .where(numbers(timeline.c.incident_number))
        .group_by(timeline.c.incident_number)
        .subquery()
    )
    return _Statements(
        lock_all=sa.select(incidents)
        .where(numbers(incidents.c.number))
        .order_by(incidents.c.number)
        .with_for_update(),
        heads=sa.select(
            timeline.c.incident_number, timeline.c.seq, timeline.c.hash, timeline.c.recorded_at
        ).join(
            newest,
            sa.and_(
                timeline.c.incident_number == newest.c.incident_number,
                timeline.c.seq == newest.c.seq,
            ),
        ),
        ordinals=sa.select(outbox.c.incident_number, sa.func.max(outbox.c.ordinal))
        .where(numbers(outbox.c.incident_number))
        .group_by(outbox.c.incident_number),
        fire=sa.update(timers_table)
        .where(
            _among(timers_table.c.key, "keys", sa.Text(), postgres),
            timers_table.c.status == TimerStatus.PENDING.value,
        )
        .values(
            status=TimerStatus.FIRED.value,
            fired_at=sa.bindparam("fired_at", type_=timers_table.c.fired_at.type),
            claimed_until=None,
        )
        .returning(timers_table.c.key),
    )


def _for(conn: Connection) -> _Statements:
    return _statements(conn.dialect.name == "postgresql")


def lock_incidents(conn: Connection, numbers: Sequence[int]) -> list[Incident]:
    found = conn.execute(_for(conn).lock_all, {"numbers": list(numbers)}).mappings().all()
    return [rows.incident_from_row(row) for row in found]


def chain_heads(
    conn: Connection, numbers: Sequence[int]
) -> dict[int, tuple[int, str, dt.datetime | None]]:
    found = conn.execute(_for(conn).heads, {"numbers": list(numbers)}).all()
    return {row.incident_number: (row.seq, row.hash, row.recorded_at) for row in found}


def outbox_ordinals(conn: Connection, numbers: Sequence[int]) -> dict[int, int]:
    found = conn.execute(_for(conn).ordinals, {"numbers": list(numbers)}).all()
    return {int(number): int(ordinal) for number, ordinal in found}


def mark_fired(conn: Connection, keys: Sequence[str], now: dt.datetime) -> set[str]:
    """Marks the pending ones among `keys` fired; returns those (the rest were fired or
    cancelled already: another claimer got there first)."""
    if not keys:
        return set()
    fire = _for(conn).fire
    return set(conn.execute(fire, {"keys": list(keys), "fired_at": now}).scalars().all())
