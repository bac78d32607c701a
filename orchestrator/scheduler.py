"""The timer service: claims due timers from the store and feeds each back through the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

from orchestrator.clock import Clock
from orchestrator.pipeline import Pipeline
from orchestrator.store.protocols import Store

log = logging.getLogger(__name__)


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
        failures = 0
        while not stop.is_set():
            try:
                await self.fire_due()
                failures = 0
            except Exception:
                # The store is down or contended: the timers are safe in it, so wait and try
                # again rather than stop escalating. A long outage shows up as overdue timers.
                failures += 1
                log.exception("firing due timers failed (%d in a row)", failures)
            wait = poll if not failures else min(30.0, poll * 2**failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
