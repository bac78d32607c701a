"""The timer service: claims due timers from the store and feeds each back through the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

from orchestrator.clock import Clock
from orchestrator.pipeline import Pipeline
from orchestrator.store.protocols import Store


class TimerService:
    def __init__(
        self,
        store: Store,
        pipeline: Pipeline,
        clock: Clock,
        *,
        lease: dt.timedelta = dt.timedelta(minutes=1),
        batch: int = 100,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.clock = clock
        self.lease = lease
        self.batch = batch

    async def fire_due(self) -> int:
        """Fires every timer due now, oldest first; returns how many fired."""
        fired = 0
        while timers := await self.store.claim_due_timers(self.clock.now(), self.batch, self.lease):
            # One transaction per claimed batch: a restart's backlog of overdue timers is
            # caught up in a few commits, not one per timer.
            in_order = sorted(timers, key=lambda t: (t.due_at, t.key))
            fired += sum(1 for d in await self.pipeline.fire_timers(in_order) if d is not None)
        return fired

    async def run_forever(self, stop: asyncio.Event, poll: float = 1.0) -> None:
        while not stop.is_set():
            await self.fire_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll)
