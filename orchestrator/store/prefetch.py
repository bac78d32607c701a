"""Whole-batch reads for a transaction about to touch many incidents: the incidents locked in
one statement (in number order, as every writer locks them), their chain heads and outbox
ordinals in one query each, instead of a few queries per incident."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchestrator.incident.model import Incident
from orchestrator.store import rows
from orchestrator.store.schema import incidents, outbox, timeline
from orchestrator.store.schema import timers as timers_table
from orchestrator.timers import TimerStatus

_numbers: sa.BindParameter[list[int]] = sa.bindparam("numbers", expanding=True)
_LOCK_ALL = (
    sa.select(incidents)
    .where(incidents.c.number.in_(_numbers))
    .order_by(incidents.c.number)
    .with_for_update()
)
_newest = (
    sa.select(timeline.c.incident_number, sa.func.max(timeline.c.seq).label("seq"))
    .where(timeline.c.incident_number.in_(_numbers))
    .group_by(timeline.c.incident_number)
    .subquery()
)
_HEADS = sa.select(
    timeline.c.incident_number, timeline.c.seq, timeline.c.hash, timeline.c.recorded_at
).join(
    _newest,
    sa.and_(
        timeline.c.incident_number == _newest.c.incident_number, timeline.c.seq == _newest.c.seq
    ),
)
_ORDINALS = (
    sa.select(outbox.c.incident_number, sa.func.max(outbox.c.ordinal))
    .where(outbox.c.incident_number.in_(_numbers))
    .group_by(outbox.c.incident_number)
)
_FIRE = (
    sa.update(timers_table)
    .where(
        timers_table.c.key.in_(sa.bindparam("keys", expanding=True)),
        timers_table.c.status == TimerStatus.PENDING.value,
    )
    .values(
        status=TimerStatus.FIRED.value,
        fired_at=sa.bindparam("fired_at", type_=timers_table.c.fired_at.type),
        claimed_until=None,
    )
    .returning(timers_table.c.key)
)


def lock_incidents(conn: Connection, numbers: Sequence[int]) -> list[Incident]:
    found = conn.execute(_LOCK_ALL, {"numbers": list(numbers)}).mappings()
    return [rows.incident_from_row(row) for row in found]


def chain_heads(
    conn: Connection, numbers: Sequence[int]
) -> dict[int, tuple[int, str, dt.datetime | None]]:
    found = conn.execute(_HEADS, {"numbers": list(numbers)})
    return {row.incident_number: (row.seq, row.hash, row.recorded_at) for row in found}


def outbox_ordinals(conn: Connection, numbers: Sequence[int]) -> dict[int, int]:
    found = conn.execute(_ORDINALS, {"numbers": list(numbers)})
    return {int(number): int(ordinal) for number, ordinal in found}


def mark_fired(conn: Connection, keys: Sequence[str], now: dt.datetime) -> set[str]:
    """Marks the pending ones among `keys` fired; returns those (the rest were fired or
    cancelled already: another claimer got there first)."""
    if not keys:
        return set()
    return set(conn.execute(_FIRE, {"keys": list(keys), "fired_at": now}).scalars())
