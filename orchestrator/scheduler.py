"""The timer service: claims due timers from the store and feeds each back through the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass

from opentelemetry import metrics

from orchestrator.clock import Clock
from orchestrator.pipeline import Pipeline
from orchestrator.store.protocols import Store

log = logging.getLogger(__name__)
# The global meter: a no-op until the process installs a MeterProvider (tests pass their own).
_METER = metrics.get_meter(__name__)


class TimerService:
    def __init__(
        self,
        store: Store,
        pipeline: Pipeline,
        clock: Clock,
        *,
        lease: dt.timedelta = dt.timedelta(minutes=1),
        batch: int = 500,
        meter: metrics.Meter | None = None,
        drill_id: str | None = None,
    ) -> None:
        self.store = store
        self.drill_id = drill_id  # a drill runner's timers fire that drill's only
        self.pipeline = pipeline
        self.clock = clock
        self.lease = lease
        self.batch = batch
        self._lateness = (meter or _METER).create_histogram(
            "orchestrator.timers.lateness",
            unit="s",
            description="How late each timer fired: when it fired minus when it was due",
        )

    async def fire_due(self) -> int:
        """Fires every timer due now, oldest first; returns how many fired."""
        fired = 0
        while timers := await self.store.claim_due_timers(
            self.clock.now(), self.batch, self.lease, self.drill_id
        ):
            # One transaction per claimed batch: a restart's backlog of overdue timers is
            # caught up in a few commits, not one per timer.
            in_order = sorted(timers, key=lambda t: (t.due_at, t.key))
            decisions = await self.pipeline.fire_timers(in_order)
            now = self.clock.now()
            for timer, decision in zip(in_order, decisions, strict=True):
                if decision is not None:
                    fired += 1
                    self._lateness.record(max(0.0, (now - timer.due_at).total_seconds()))
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


@dataclass(frozen=True)
class Audit:
    overdue: int  # pending timers past due by more than the threshold
    oldest_due: dt.datetime | None

    @property
    def healthy(self) -> bool:
        return self.overdue == 0


class EscalationAuditor:
    """Notices a stuck scheduler before a customer does: timers overdue by more than
    `threshold` mean escalations are not going out. The service reports it on /readyz and
    in the log; the scheduler itself cannot, since it is the thing that may be stuck."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        threshold: dt.timedelta = dt.timedelta(minutes=2),
        meter: metrics.Meter | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.threshold = threshold
        self._was_healthy = True
        meter = meter or _METER
        self._overdue = meter.create_gauge(
            "orchestrator.timers.overdue",
            unit="{timer}",
            description="Pending timers past due by more than the auditor's threshold",
        )
        self._oldest_age = meter.create_gauge(
            "orchestrator.timers.overdue.oldest_age",
            unit="s",
            description="How late the oldest overdue timer is (0 when none is)",
        )

    async def check(self) -> Audit:
        now = self.clock.now()
        overdue, oldest = await self.store.overdue_timers(now - self.threshold)
        audit = Audit(overdue, oldest)
        self._overdue.set(overdue)
        self._oldest_age.set((now - oldest).total_seconds() if oldest is not None else 0.0)
        if not audit.healthy:
            assert oldest is not None
            log.warning(
                "escalation auditor: %d timer(s) overdue by more than %s, the oldest due %s "
                "(%s late): is the scheduler running?",
                overdue,
                self.threshold,
                oldest.isoformat(),
                now - oldest,
            )
        elif not self._was_healthy:
            log.warning("escalation auditor: no timers overdue any more")
        self._was_healthy = audit.healthy
        return audit
