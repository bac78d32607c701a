"""SqlTransaction: the atomic unit of writes, synchronous, on one open SQL connection in the
store's worker thread (see docs/adr/0004-store-runs-transactions-in-a-worker-thread.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from orchestrator.actions import Action
from orchestrator.incident.model import Incident
from orchestrator.store import prefetch, rows
from orchestrator.store.pending import PendingWrites
from orchestrator.store.protocols import (
    AlertRecord,
    ConcurrentUpdateError,
    DeadLetter,
    OutboxStatus,
    Timer,
    TimerStatus,
)
from orchestrator.store.schema import (
    INCIDENT_COUNTER,
    alerts,
    counters,
    dead_letters,
    incidents,
    outbox,
    timeline,
)
from orchestrator.store.schema import timers as timers_table
from orchestrator.timeline import GENESIS_HASH, EntryDraft, TimelineEntry, chain

T = TypeVar("T")

# Namespace of the advisory locks taken per group key (the two-int4 lock space on PostgreSQL).
_GROUP_LOCK_NAMESPACE = 0x6F7263

# The statements on the hot path, built once: building a statement per call (and its cache
# key) cost more than executing it. Values arrive as bound parameters.
_INSERT_ALERT = sa.insert(alerts)
_SEEN_ALERTS = sa.select(alerts.c.alert_id).where(
    alerts.c.alert_id.in_(sa.bindparam("ids", expanding=True))
)
_GROUP_LOCK = sa.text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:key))")
_LATEST_FOR_GROUP = (
    sa.select(incidents)
    .where(incidents.c.group_key == sa.bindparam("group_key"))
    .order_by(incidents.c.declared_at.desc(), incidents.c.number.desc())
    .limit(1)
    .with_for_update()
)
_INCIDENT_FOR_UPDATE = (
    sa.select(incidents).where(incidents.c.number == sa.bindparam("number")).with_for_update()
)
_NEXT_NUMBER = (
    sa.update(counters)
    .where(counters.c.name == sa.bindparam("counter"))
    .values(value=counters.c.value + 1)
    .returning(counters.c.value)
)
_LAST_ENTRY = (
    sa.select(timeline.c.seq, timeline.c.hash, timeline.c.recorded_at)
    .where(timeline.c.incident_number == sa.bindparam("number"))
    .order_by(timeline.c.seq.desc())
    .limit(1)
)
_LAST_ORDINAL = sa.select(sa.func.max(outbox.c.ordinal)).where(
    outbox.c.incident_number == sa.bindparam("number")
)
_LOCK_INCIDENT = (
    sa.select(incidents.c.number)
    .where(incidents.c.number == sa.bindparam("number"))
    .with_for_update()
)
_TIMER_FIRED = (
    sa.update(timers_table)
    .where(
        timers_table.c.key == sa.bindparam("where_key"),
        timers_table.c.status == TimerStatus.PENDING.value,
    )
    .values(
        status=TimerStatus.FIRED.value,
        fired_at=sa.bindparam("fired_at", type_=timers_table.c.fired_at.type),
        claimed_until=None,
    )
)


class SqlTransaction:
    """Runs inside a transaction SqlStore began; it never commits or rolls back itself."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._postgres = conn.dialect.name == "postgresql"
        # What this transaction already knows, so a batch does not ask the database again:
        # each chain's head (seq, hash, recorded_at) and the incidents it holds locks on.
        self._heads: dict[int, tuple[int, str, dt.datetime | None]] = {}
        self._locked: set[int] = set()
        # Each incident's next outbox ordinal: its actions' delivery order, across transactions
        # (clock readings can tie, so created_at cannot order them).
        self._ordinals: dict[int, int] = {}
        # Incidents this transaction has read or written (all locked), the newest per group,
        # and the writes it holds for flush().
        self._incidents: dict[int, Incident] = {}
        self._group_latest: dict[str, int] = {}
        self._pending = PendingWrites()

    def flush(self) -> None:
        """Writes what is held. The store calls it before committing; the methods that read or
        write the held tables directly call it first, so they never see a stale picture."""
        if self._pending:
            self._pending.flush(self._conn, self._postgres)

    def seen_alerts(self, alert_ids: Sequence[str]) -> set[str]:
        """Which of these alert ids are already recorded, in one query."""
        if not alert_ids:
            return set()
        found = self._conn.execute(_SEEN_ALERTS, {"ids": sorted(set(alert_ids))})
        return set(found.scalars())

    def record_alerts(self, records: Sequence[AlertRecord]) -> None:
        """Records several alerts with one statement."""
        if records:
            self._conn.execute(_INSERT_ALERT, [rows.alert_values(r) for r in records])

    def latest_incident_for_group(self, group_key: str) -> Incident | None:
        if group_key in self._group_latest:
            return self._incidents[self._group_latest[group_key]]
        if self._postgres:
            # A row lock cannot cover "no incident yet": two alerts of a new group would each open
            # one. The group's advisory lock serialises them until this transaction ends.
            self._conn.execute(_GROUP_LOCK, {"namespace": _GROUP_LOCK_NAMESPACE, "key": group_key})
        row = self._conn.execute(_LATEST_FOR_GROUP, {"group_key": group_key}).mappings().first()
        return self._locked_incident(row)

    def get_incident_for_update(self, number: int) -> Incident | None:
        if number in self._incidents:
            return self._incidents[number]
        row = self._conn.execute(_INCIDENT_FOR_UPDATE, {"number": number}).mappings().first()
        return self._locked_incident(row)

    def _locked_incident(self, row: Any) -> Incident | None:
        """An incident read FOR UPDATE: its row is locked until this transaction ends."""
        if row is None:
            return None
        incident = rows.incident_from_row(row)
        self._locked.add(incident.number)
        self._remember(incident)
        return incident

    def _remember(self, incident: Incident) -> None:
        self._incidents[incident.number] = incident
        latest = self._group_latest.get(incident.group_key)
        if latest is None or latest <= incident.number:
            self._group_latest[incident.group_key] = incident.number

    def allocate_incident_number(self) -> int:
        # The first UPDATE takes the counter's row lock until commit or rollback: numbers are
        # handed out one transaction at a time, and a rollback undoes the increment. Holding
        # the lock, this transaction counts the rest itself and writes the last one at flush.
        if self._pending.counter is not None:
            self._pending.counter += 1
            return self._pending.counter
        value = self._conn.scalar(_NEXT_NUMBER, {"counter": INCIDENT_COUNTER})
        if value is None:
            raise RuntimeError("the incident counter is missing: was the store migrated?")
        self._pending.counter = int(value)
        return int(value)

    def insert_incident(self, incident: Incident) -> None:
        self._pending.record_incident(incident, new=True)
        # A new incident's chain and outbox are empty; its row is ours until commit.
        self._heads[incident.number] = (0, GENESIS_HASH, None)
        self._ordinals[incident.number] = -1
        self._locked.add(incident.number)
        self._remember(incident)

    def update_incident(self, incident: Incident) -> None:
        known = self._incidents.get(incident.number)
        if known is not None and known.revision != incident.revision - 1:
            raise ConcurrentUpdateError(
                f"incident {incident.number} is at revision {known.revision}, "
                f"not {incident.revision - 1}"
            )
        self._pending.record_incident(incident, new=False)
        self._remember(incident)

    def append_timeline(
        self, incident_number: int, drafts: list[EntryDraft], recorded_at: dt.datetime
    ) -> list[TimelineEntry]:
        if not drafts:
            return []
        self.lock_incident(incident_number)
        seq, prev_hash, last_recorded = self._head(incident_number)
        # Receive times never run backwards along a chain, even if this host's clock was
        # stepped back or another replica's clock lags: an entry is never recorded before the
        # one it follows. (The source's own time, occurred_at, is kept exactly as given.)
        if last_recorded is not None and last_recorded > recorded_at:
            recorded_at = last_recorded
        entries: list[TimelineEntry] = []
        for draft in drafts:
            seq += 1
            entry = chain(incident_number, seq, draft, recorded_at, prev_hash)
            entries.append(entry)
            prev_hash = entry.hash
        self._pending.entries.extend(rows.timeline_values(e) for e in entries)
        self._heads[incident_number] = (seq, prev_hash, recorded_at)
        return entries

    def _head(self, incident_number: int) -> tuple[int, str, dt.datetime | None]:
        """The chain's last (seq, hash, recorded_at); the incident is locked, so it holds
        for the rest of this transaction once read."""
        if incident_number not in self._heads:
            last = self._conn.execute(_LAST_ENTRY, {"number": incident_number}).first()
            self._heads[incident_number] = (
                (last.seq, last.hash, last.recorded_at)
                if last is not None
                else (0, GENESIS_HASH, None)
            )
        return self._heads[incident_number]

    def lock_incident(self, incident_number: int) -> None:
        """Serialises appends to one incident's chain across PostgreSQL connections.

        SQLite needs nothing: its writers already take turns. Everyone locks the incident before
        touching its outbox rows, so the dispatcher and the pipeline cannot deadlock each other.
        """
        if self._postgres and incident_number not in self._locked:
            self._conn.execute(_LOCK_INCIDENT, {"number": incident_number})
            self._locked.add(incident_number)

    def queue_actions(self, actions: list[Action], now: dt.datetime) -> None:
        self._pending.actions.extend(self._outbox_values(actions, now))

    def enqueue_actions(self, actions: list[Action], now: dt.datetime) -> list[Action]:
        self.flush()
        new = self._insert_if_absent(outbox, self._outbox_values(actions, now))
        return _first_of_each(actions, new, lambda action: action.key)

    def _outbox_values(self, actions: list[Action], now: dt.datetime) -> list[dict[str, Any]]:
        ordinals = [self._next_ordinal(action.incident_number) for action in actions]
        return [
            {
                "key": action.key,
                "name": action.name,
                "params": action.params,
                "incident_number": action.incident_number,
                "is_drill": action.is_drill,
                "drill_id": action.drill_id,
                "trace": action.trace,
                "status": OutboxStatus.PENDING.value,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
                "claimed_until": None,
                "last_error": "",
                "delivered_at": None,
                "result": {},
                "lane": action.lane,
                "ordinal": ordinal,
            }
            for action, ordinal in zip(actions, ordinals, strict=True)
        ]

    def _next_ordinal(self, incident_number: int) -> int:
        """The incident's row is locked by whoever enqueues for it, so reading the highest
        ordinal once per transaction is safe; the rest are counted here."""
        if incident_number not in self._ordinals:
            last = self._conn.scalar(_LAST_ORDINAL, {"number": incident_number})
            self._ordinals[incident_number] = -1 if last is None else int(last)
        self._ordinals[incident_number] += 1
        return self._ordinals[incident_number]

    def queue_timers(self, timers: list[Timer]) -> None:
        self._pending.timers.extend(_timer_values(timers))

    def schedule_timers(self, timers: list[Timer]) -> list[Timer]:
        self.flush()
        new = self._insert_if_absent(timers_table, _timer_values(timers))
        return _first_of_each(timers, new, lambda timer: timer.key)

    def _insert_if_absent(self, table: sa.Table, values: list[dict[str, Any]]) -> set[str]:
        """Inserts the rows whose key is not stored yet; returns the keys it inserted.

        One prepared statement executed for many rows: a VALUES list built per call would be
        compiled afresh every time, which was most of the cost of recording an incident."""
        if not values:
            return set()
        statement = _INSERT_IF_ABSENT[(table.name, self._postgres)]
        result = self._conn.execute(statement, values)
        return set(result.scalars())

    def cancel_timers(
        self, incident_number: int, kinds: frozenset[str] | None, now: dt.datetime
    ) -> list[Timer]:
        self.flush()
        conditions = [
            timers_table.c.incident_number == incident_number,
            timers_table.c.status == TimerStatus.PENDING.value,
        ]
        if kinds is not None:
            if not kinds:
                return []
            conditions.append(timers_table.c.kind.in_(sorted(kinds)))
        result = self._conn.execute(
            sa.update(timers_table)
            .where(*conditions)
            .values(status=TimerStatus.CANCELLED.value, cancelled_at=now, claimed_until=None)
            .returning(*timers_table.c)
        )
        cancelled = [rows.timer_from_row(row) for row in result.mappings()]
        return sorted(cancelled, key=lambda timer: (timer.due_at, timer.key))

    def pending_timers(self, incident_number: int, kind: str) -> list[Timer]:
        self.flush()
        query = (
            sa.select(timers_table)
            .where(
                timers_table.c.incident_number == incident_number,
                timers_table.c.kind == kind,
                timers_table.c.status == TimerStatus.PENDING.value,
            )
            .order_by(timers_table.c.due_at, timers_table.c.key)
        )
        return [rows.timer_from_row(row) for row in self._conn.execute(query).mappings()]

    def prepare_incidents(self, numbers: Sequence[int]) -> None:
        """Locks these incidents in number order and reads what writing to them needs, in
        three statements for the whole batch (store/prefetch.py)."""
        wanted = sorted({n for n in numbers if n not in self._incidents})
        if not wanted:
            return
        for incident in prefetch.lock_incidents(self._conn, wanted):
            self._locked.add(incident.number)
            self._remember(incident)
        heads = prefetch.chain_heads(self._conn, wanted)
        ordinals = prefetch.outbox_ordinals(self._conn, wanted)
        for number in wanted:
            self._heads.setdefault(number, heads.get(number, (0, GENESIS_HASH, None)))
            self._ordinals.setdefault(number, ordinals.get(number, -1))

    def mark_timers_fired(self, keys: Sequence[str], now: dt.datetime) -> set[str]:
        # No flush, as for one timer below.
        return prefetch.mark_fired(self._conn, keys, now)

    def mark_timer_fired(self, key: str, now: dt.datetime) -> bool:
        # No flush: the timer was claimed from the table, so it is not among the held inserts,
        # and cancellations are written at once.
        result = self._conn.execute(_TIMER_FIRED, {"where_key": key, "fired_at": now})
        return result.rowcount == 1

    def record_dead_letter(self, letter: DeadLetter) -> int:
        new_id = self._conn.scalar(
            sa.insert(dead_letters)
            .values(rows.dead_letter_values(letter))
            .returning(dead_letters.c.id)
        )
        if new_id is None:
            raise RuntimeError("the database returned no id for the dead letter")
        return int(new_id)


def _timer_values(timers: list[Timer]) -> list[dict[str, Any]]:
    return [
        {
            **rows.timer_values(timer),
            "status": TimerStatus.PENDING.value,
            "claimed_until": None,
            "fired_at": None,
            "cancelled_at": None,
        }
        for timer in timers
    ]


def _insert_if_absent_statement(table: sa.Table, postgres: bool) -> Any:
    insert = postgresql.insert(table) if postgres else sqlite.insert(table)
    return insert.on_conflict_do_nothing(index_elements=[table.c.key]).returning(
        table.c.key, sort_by_parameter_order=True
    )


_INSERT_IF_ABSENT = {
    (table.name, postgres): _insert_if_absent_statement(table, postgres)
    for table in (outbox, timers_table)
    for postgres in (False, True)
}


def _first_of_each(items: Sequence[T], inserted: set[str], key_of: Callable[[T], str]) -> list[T]:
    """The items whose key was inserted, in the caller's order, a repeated key only once."""
    seen: set[str] = set()
    kept: list[T] = []
    for item in items:
        key = key_of(item)
        if key in inserted and key not in seen:
            seen.add(key)
            kept.append(item)
    return kept
