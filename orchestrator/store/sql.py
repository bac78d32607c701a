"""SqlStore: the Store over SQLite or PostgreSQL, used by the pipeline, dispatcher and CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orchestrator.actions import ActionResult
from orchestrator.incident.model import Incident, Status
from orchestrator.store import rows
from orchestrator.store.engine import WRITE_OPTION, create_engine, is_memory_sqlite, migrate
from orchestrator.store.protocols import (
    AlertRecord,
    DeadLetter,
    OutboxItem,
    OutboxStatus,
    Timer,
    TimerStatus,
    Transaction,
)
from orchestrator.store.schema import (
    UtcDateTime,
    alerts,
    dead_letters,
    incidents,
    outbox,
    timers,
)
from orchestrator.store.schema import timeline as timeline_table
from orchestrator.store.transaction import SqlTransaction
from orchestrator.timeline import EntryDraft, TimelineEntry


class SqlStore:
    """A Store at a SQLAlchemy async URL: `sqlite+aiosqlite:///path.db`,
    `sqlite+aiosqlite:///:memory:` or `postgresql+asyncpg://user@host/db`."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._engine: AsyncEngine | None = None
        self._sqlite = sa.make_url(url).get_backend_name() == "sqlite"
        # SQLite allows one writer at a time; taking turns here keeps this process's tasks from
        # contending for the file lock. An in-memory database is a single shared connection,
        # so there even readers must take turns.
        self._lock = asyncio.Lock()
        self._lock_holder: asyncio.Task[Any] | None = None
        self._readers_take_turns = is_memory_sqlite(url)

    @property
    def engine(self) -> AsyncEngine:
        """The open engine, for administration and tests; application code uses the Store API."""
        if self._engine is None:
            raise RuntimeError("the store is not open: call `await store.open()` first")
        return self._engine

    async def open(self) -> None:
        if self._engine is not None:
            return
        engine = create_engine(self._url)
        try:
            await migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine

    async def close(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await engine.dispose()

    @asynccontextmanager
    async def _connection(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction: committed when the block ends, rolled back if
        it raises."""
        turns: AbstractAsyncContextManager[None] = (
            self._turn() if self._sqlite and (write or self._readers_take_turns) else nullcontext()
        )
        async with turns, self.engine.connect() as conn:
            if write:
                await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if task is not None and task is self._lock_holder:
            # Waiting for a lock this very task holds would hang forever; fail loudly instead.
            raise RuntimeError(
                "this task already has a transaction open on this SQLite store: "
                "do the work through that transaction instead of the store"
            )
        async with self._lock:
            self._lock_holder = task
            try:
                yield
            finally:
                self._lock_holder = None

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        async with self._connection(write=True) as conn:
            yield SqlTransaction(conn)

    async def claim_due_actions(
        self, now: dt.datetime, limit: int, lease: dt.timedelta
    ) -> list[OutboxItem]:
        claimed = await self._claim(
            outbox, outbox.c.next_attempt_at, OutboxStatus.PENDING, now, limit, lease
        )
        return [rows.outbox_from_row(row) for row in claimed]

    async def claim_due_timers(
        self, now: dt.datetime, limit: int, lease: dt.timedelta
    ) -> list[Timer]:
        claimed = await self._claim(timers, timers.c.due_at, TimerStatus.PENDING, now, limit, lease)
        return [rows.timer_from_row(row) for row in claimed]

    async def next_timer_due(self) -> dt.datetime | None:
        # A leased timer is next claimable when its lease runs out, not when it was due: counting
        # its past due time would have a scheduler wake up over and over to claim nothing.
        claimable_at = sa.case(
            (timers.c.claimed_until > timers.c.due_at, timers.c.claimed_until),
            else_=timers.c.due_at,
        )
        query = sa.select(sa.func.min(claimable_at, type_=UtcDateTime)).where(
            timers.c.status == TimerStatus.PENDING.value
        )
        async with self._connection(write=False) as conn:
            due: dt.datetime | None = await conn.scalar(query)
            return due

    async def _claim(
        self,
        table: sa.Table,
        due: sa.Column[Any],
        pending: str,
        now: dt.datetime,
        limit: int,
        lease: dt.timedelta,
    ) -> Sequence[RowMapping]:
        """Leases up to `limit` due pending rows that nobody else holds a live lease on."""
        if limit <= 0:
            return []
        async with self._connection(write=True) as conn:
            # SKIP LOCKED (PostgreSQL; SQLite has no row locks and ignores it) lets concurrent
            # claimers pass over each other's rows instead of queueing behind them; a row
            # claimed meanwhile fails the WHERE when rechecked, so no key is handed out twice.
            claimable = (
                sa.select(table)
                .where(
                    table.c.status == pending,
                    due <= now,
                    sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until <= now),
                )
                .order_by(due, table.c.key)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            found = (await conn.execute(claimable)).mappings().all()
            if found:
                await conn.execute(
                    sa.update(table)
                    .where(table.c.key.in_([row["key"] for row in found]))
                    .values(claimed_until=now + lease)
                )
            return found

    async def finish_action(
        self,
        key: str,
        result: ActionResult,
        now: dt.datetime,
        retry_at: dt.datetime | None,
        timeline: list[EntryDraft],
    ) -> None:
        async with self._connection(write=True) as conn:
            incident_number = await conn.scalar(
                sa.select(outbox.c.incident_number).where(outbox.c.key == key)
            )
            if incident_number is None:
                raise KeyError(f"no action {key!r} in the outbox")
            txn = SqlTransaction(conn)
            await txn.lock_incident(incident_number)
            values: dict[str, Any] = {"attempts": outbox.c.attempts + 1, "claimed_until": None}
            if result.ok:
                values |= {
                    "status": OutboxStatus.DELIVERED.value,
                    "delivered_at": now,
                    "last_error": "",
                }
            elif retry_at is not None:
                values |= {"next_attempt_at": retry_at, "last_error": result.detail}
            else:
                values |= {"status": OutboxStatus.FAILED.value, "last_error": result.detail}
            if result.data:
                values["result"] = result.data
            # Only a pending item changes: a late finish from a dispatcher whose lease expired
            # must not turn a delivered action back into a retry. Its attempt still goes on
            # the timeline, because it happened.
            await conn.execute(
                sa.update(outbox)
                .where(outbox.c.key == key, outbox.c.status == OutboxStatus.PENDING.value)
                .values(values)
            )
            await txn.append_timeline(incident_number, timeline, now)

    async def get_incident(self, number: int) -> Incident | None:
        found = await self._read(sa.select(incidents).where(incidents.c.number == number))
        return rows.incident_from_row(found[0]) if found else None

    async def list_incidents(
        self, statuses: frozenset[Status] | None = None, limit: int = 100
    ) -> list[Incident]:
        query = sa.select(incidents).order_by(incidents.c.number.desc()).limit(limit)
        if statuses is not None:
            query = query.where(incidents.c.status.in_(sorted(s.value for s in statuses)))
        return [rows.incident_from_row(row) for row in await self._read(query)]

    async def timeline(self, incident_number: int) -> list[TimelineEntry]:
        query = (
            sa.select(timeline_table)
            .where(timeline_table.c.incident_number == incident_number)
            .order_by(timeline_table.c.seq)
        )
        return [rows.timeline_from_row(row) for row in await self._read(query)]

    async def list_actions(self, incident_number: int | None = None) -> list[OutboxItem]:
        query = sa.select(outbox).order_by(outbox.c.created_at, outbox.c.key)
        if incident_number is not None:
            query = query.where(outbox.c.incident_number == incident_number)
        return [rows.outbox_from_row(row) for row in await self._read(query)]

    async def list_alerts(self, incident_number: int | None = None) -> list[AlertRecord]:
        query = sa.select(alerts).order_by(alerts.c.received_at, alerts.c.alert_id)
        if incident_number is not None:
            query = query.where(alerts.c.incident_number == incident_number)
        return [rows.alert_from_row(row) for row in await self._read(query)]

    async def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        query = sa.select(dead_letters).order_by(dead_letters.c.id.desc()).limit(limit)
        return [rows.dead_letter_from_row(row) for row in await self._read(query)]

    async def get_dead_letter(self, letter_id: int) -> DeadLetter | None:
        query = sa.select(dead_letters).where(dead_letters.c.id == letter_id)
        found = await self._read(query)
        return rows.dead_letter_from_row(found[0]) if found else None

    async def list_timers(self, incident_number: int | None = None) -> list[Timer]:
        query = sa.select(timers).order_by(timers.c.due_at, timers.c.key)
        if incident_number is not None:
            query = query.where(timers.c.incident_number == incident_number)
        return [rows.timer_from_row(row) for row in await self._read(query)]

    async def _read(self, query: sa.Select[Any]) -> Sequence[RowMapping]:
        async with self._connection(write=False) as conn:
            found: Sequence[RowMapping] = (await conn.execute(query)).mappings().all()
            return found
