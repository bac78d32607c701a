"""AsyncTransaction: the async Transaction API over a SqlTransaction in the store's worker
thread, for callers doing a few operations (CLI, intake, tests); batches use SqlStore.run()."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from orchestrator.actions import Action
from orchestrator.incident.model import Incident
from orchestrator.store.protocols import AlertRecord, DeadLetter, Timer
from orchestrator.store.transaction import SqlTransaction
from orchestrator.timeline import EntryDraft, TimelineEntry

T = TypeVar("T")

InWorker = Callable[..., Awaitable[Any]]


class AsyncTransaction:
    """Each call hops to the worker thread and runs the synchronous operation there."""

    def __init__(self, sync: SqlTransaction, in_worker: InWorker) -> None:
        self._sync = sync
        self._in_worker = in_worker

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await self._in_worker(fn, *args)
        return result

    async def seen_alerts(self, alert_ids: Sequence[str]) -> set[str]:
        return await self._call(self._sync.seen_alerts, alert_ids)

    async def record_alerts(self, records: Sequence[AlertRecord]) -> None:
        await self._call(self._sync.record_alerts, records)

    async def latest_incident_for_group(self, group_key: str) -> Incident | None:
        return await self._call(self._sync.latest_incident_for_group, group_key)

    async def get_incident_for_update(self, number: int) -> Incident | None:
        return await self._call(self._sync.get_incident_for_update, number)

    async def allocate_incident_number(self) -> int:
        return await self._call(self._sync.allocate_incident_number)

    async def insert_incident(self, incident: Incident) -> None:
        await self._call(self._sync.insert_incident, incident)

    async def update_incident(self, incident: Incident) -> None:
        await self._call(self._sync.update_incident, incident)

    async def append_timeline(
        self, incident_number: int, drafts: list[EntryDraft], recorded_at: dt.datetime
    ) -> list[TimelineEntry]:
        return await self._call(self._sync.append_timeline, incident_number, drafts, recorded_at)

    async def enqueue_actions(self, actions: list[Action], now: dt.datetime) -> list[Action]:
        return await self._call(self._sync.enqueue_actions, actions, now)

    async def schedule_timers(self, timers: list[Timer]) -> list[Timer]:
        return await self._call(self._sync.schedule_timers, timers)

    async def cancel_timers(
        self, incident_number: int, kinds: frozenset[str] | None, now: dt.datetime
    ) -> list[Timer]:
        return await self._call(self._sync.cancel_timers, incident_number, kinds, now)

    async def mark_timer_fired(self, key: str, now: dt.datetime) -> bool:
        return await self._call(self._sync.mark_timer_fired, key, now)

    async def record_dead_letter(self, letter: DeadLetter) -> int:
        return await self._call(self._sync.record_dead_letter, letter)
