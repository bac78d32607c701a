"""SqlStore: the Store over SQLite or PostgreSQL, used by the pipeline, dispatcher and CLI.

Every transaction runs synchronously in the store's worker thread (docs/adr/0004): the pipeline
hands a whole batch over in one hop with `run()`, and everything else goes through the async
API, which forwards each call to the same synchronous code.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from orchestrator.actions import ActionResult, Delivered
from orchestrator.incident.model import Incident, Status
from orchestrator.store import rows
from orchestrator.store.adapter import AsyncTransaction
from orchestrator.store.claims import claim, finish_action, first_in_lane, of_drill
from orchestrator.store.drills import DrillQueries
from orchestrator.store.engine import (
    POSTGRES_POOL_SIZE,
    WRITE_OPTION,
    create_engine,
    is_memory_sqlite,
    migrate,
)
from orchestrator.store.evidence import EvidenceQueries
from orchestrator.store.folds import FoldQueries
from orchestrator.store.postmortems import PostmortemQueries
from orchestrator.store.protocols import (
    AlertRecord,
    ConcurrentUpdateError,
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

T = TypeVar("T")


class SqlStore(EvidenceQueries, PostmortemQueries, FoldQueries, DrillQueries):
    """A Store at a SQLAlchemy URL: `sqlite+aiosqlite:///path.db` (or `sqlite:///…`),
    `sqlite+aiosqlite:///:memory:`, `postgresql+asyncpg://user@host/db` (or `postgresql://…`)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._engine: Engine | None = None
        self._sqlite = sa.make_url(url).get_backend_name() == "sqlite"
        # SQLite allows one writer at a time: one worker thread, and tasks take turns. An
        # in-memory database is a single shared connection, so there even readers take turns.
        workers = 1 if self._sqlite else POSTGRES_POOL_SIZE
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="store")
        self._lock = asyncio.Lock()
        self._lock_holder: asyncio.Task[Any] | None = None
        self._readers_take_turns = is_memory_sqlite(url)

    @property
    def engine(self) -> Engine:
        """The open engine, for administration and tests; application code uses the Store API."""
        if self._engine is None:
            raise RuntimeError("the store is not open: call `await store.open()` first")
        return self._engine

    async def open(self) -> None:
        if self._engine is not None:
            return
        engine = create_engine(self._url)
        try:
            await self._in_worker(migrate, engine)
        except BaseException:
            await self._in_worker(engine.dispose)
            raise
        self._engine = engine

    async def close(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await self._in_worker(engine.dispose)
        self._executor.shutdown(wait=True)

    async def _in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        # In the caller's context (executors do not carry it over): the span a batch is
        # recorded under is the current one inside its transaction too.
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._executor, context.run, fn, *args)

    async def run(self, work: Callable[[SqlTransaction], T]) -> T:
        """Runs `work` in one write transaction in the worker thread: committed if it returns,
        rolled back if it raises. The pipeline's batches go through here, in one hop."""
        return await self._run(lambda conn: _flushed(work, SqlTransaction(conn)), write=True)

    async def _run(self, work: Callable[[Connection], T], *, write: bool) -> T:
        turns: AbstractAsyncContextManager[None] = (
            self._turn() if self._sqlite and (write or self._readers_take_turns) else nullcontext()
        )
        async with turns:
            return await self._in_worker(self._transactional, work, write)

    def _transactional(self, work: Callable[[Connection], T], write: bool) -> T:
        try:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin():
                    return work(conn)
        except sa.exc.DBAPIError as err:
            # PostgreSQL gave up on this transaction to let another through: nothing was
            # written, and doing it again is the cure, so callers retry it like a conflict.
            if getattr(err.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
                raise ConcurrentUpdateError(f"the database asked for a retry: {err.orig}") from err
            raise

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
        """One transaction held open across awaits, each call forwarded to a worker thread.

        On PostgreSQL it gets a thread of its own: a transaction waiting on a row lock must not
        occupy a shared worker that the lock's holder needs to finish and commit."""
        if self._sqlite:
            async with self._turn(), self._held_open(self._in_worker) as transaction:
                yield transaction
            return
        own = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-txn")

        async def in_own_thread(fn: Callable[..., T], *args: Any) -> T:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(own, functools.partial(fn, *args))

        try:
            async with self._held_open(in_own_thread) as transaction:
                yield transaction
        finally:
            own.shutdown(wait=False)

    @asynccontextmanager
    async def _held_open(self, in_worker: Callable[..., Any]) -> AsyncIterator[Transaction]:
        conn = await in_worker(self._begin_writing)
        transaction = SqlTransaction(conn)
        try:
            yield AsyncTransaction(transaction, in_worker)
            await in_worker(transaction.flush)
        except BaseException:
            await in_worker(_finish, conn, False)
            raise
        await in_worker(_finish, conn, True)

    def _begin_writing(self) -> Connection:
        conn = self.engine.connect()
        conn.execution_options(**{WRITE_OPTION: True})
        conn.begin()
        return conn

    async def claim_due_actions(
        self, now: dt.datetime, limit: int, lease: dt.timedelta, drill_id: str | None = None
    ) -> list[OutboxItem]:
        claimed = await self._run(
            lambda conn: claim(
                conn,
                outbox,
                outbox.c.next_attempt_at,
                OutboxStatus.PENDING,
                now,
                limit,
                lease,
                first_in_lane(),
                of_drill(outbox, drill_id),
            ),
            write=True,
        )
        return [rows.outbox_from_row(row) for row in claimed]

    async def claim_due_timers(
        self, now: dt.datetime, limit: int, lease: dt.timedelta, drill_id: str | None = None
    ) -> list[Timer]:
        claimed = await self._run(
            lambda conn: claim(
                conn,
                timers,
                timers.c.due_at,
                TimerStatus.PENDING,
                now,
                limit,
                lease,
                of_drill(timers, drill_id),
            ),
            write=True,
        )
        return [rows.timer_from_row(row) for row in claimed]

    async def next_timer_due(self, drill_id: str | None = None) -> dt.datetime | None:
        # A leased timer is next claimable when its lease runs out, not when it was due: counting
        # its past due time would have a scheduler wake up over and over to claim nothing.
        claimable_at = sa.case(
            (timers.c.claimed_until > timers.c.due_at, timers.c.claimed_until),
            else_=timers.c.due_at,
        )
        query = sa.select(sa.func.min(claimable_at, type_=UtcDateTime)).where(
            timers.c.status == TimerStatus.PENDING.value, of_drill(timers, drill_id)
        )
        due: dt.datetime | None = await self._run(lambda conn: conn.scalar(query), write=False)
        return due

    async def finish_action(
        self,
        key: str,
        result: ActionResult,
        now: dt.datetime,
        retry_at: dt.datetime | None,
        timeline: list[EntryDraft],
    ) -> None:
        await self._run(
            lambda conn: finish_action(conn, key, result, now, retry_at, timeline), write=True
        )

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
        # Within one instant, the order the decisions asked for them (keys sort as text).
        query = sa.select(outbox).order_by(outbox.c.created_at, outbox.c.ordinal, outbox.c.key)
        if incident_number is not None:
            query = query.where(outbox.c.incident_number == incident_number)
        return [rows.outbox_from_row(row) for row in await self._read(query)]

    async def delivered_actions(self, incident_number: int) -> list[Delivered]:
        query = (
            sa.select(outbox.c.name, outbox.c.key, outbox.c.result)
            .where(
                outbox.c.incident_number == incident_number,
                outbox.c.status == OutboxStatus.DELIVERED.value,
            )
            .order_by(outbox.c.delivered_at, outbox.c.ordinal)
        )
        return [
            Delivered(row["name"], row["key"], dict(row["result"]))
            for row in await self._read(query)
        ]

    async def incident_for_result(self, action_name: str, field: str, value: str) -> int | None:
        query = (
            sa.select(outbox.c.incident_number)
            .where(
                outbox.c.name == action_name,
                outbox.c.status == OutboxStatus.DELIVERED.value,
                outbox.c.result[field].as_string() == value,
            )
            .order_by(outbox.c.incident_number.desc())
            .limit(1)
        )
        found = await self._read(query)
        return int(found[0]["incident_number"]) if found else None

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

    async def overdue_timers(self, due_before: dt.datetime) -> tuple[int, dt.datetime | None]:
        query = sa.select(sa.func.count(), sa.func.min(timers.c.due_at, type_=UtcDateTime)).where(
            timers.c.status == TimerStatus.PENDING.value,
            timers.c.due_at < due_before,
            of_drill(timers, None),
        )
        ((count, oldest),) = await self._run(lambda conn: conn.execute(query).all(), write=False)
        return int(count), oldest

    async def outbox_backlog(self) -> tuple[int, dt.datetime | None]:
        """How many real (not drill) actions wait in the outbox, and since when the oldest."""
        query = sa.select(
            sa.func.count(), sa.func.min(outbox.c.created_at, type_=UtcDateTime)
        ).where(outbox.c.status == OutboxStatus.PENDING.value, of_drill(outbox, None))
        ((count, oldest),) = await self._run(lambda conn: conn.execute(query).all(), write=False)
        return int(count), oldest

    async def list_timers(self, incident_number: int | None = None) -> list[Timer]:
        query = sa.select(timers).order_by(timers.c.due_at, timers.c.key)
        if incident_number is not None:
            query = query.where(timers.c.incident_number == incident_number)
        return [rows.timer_from_row(row) for row in await self._read(query)]

    async def _read(self, query: sa.Select[Any]) -> Sequence[RowMapping]:
        return await self._run(lambda conn: conn.execute(query).mappings().all(), write=False)


def _finish(conn: Connection, commit: bool) -> None:
    try:
        transaction = conn.get_transaction()
        if transaction is None:
            return
        if not commit:
            transaction.rollback()
            return
        try:
            transaction.commit()
        except BaseException:
            _abandon(conn)
            raise
    finally:
        conn.close()


def _abandon(conn: Connection) -> None:
    """A COMMIT that fails (a deferred foreign key, say) can leave SQLite inside the
    transaction; roll it back so the pooled connection is clean for the next user."""
    raw = conn.connection.dbapi_connection
    if raw is not None and getattr(raw, "in_transaction", False):
        raw.rollback()


RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected


def _flushed(work: Callable[[SqlTransaction], T], transaction: SqlTransaction) -> T:
    """Runs `work`, then writes what it held back, inside the same transaction."""
    result = work(transaction)
    transaction.flush()
    return result
