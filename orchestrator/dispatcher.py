"""The dispatcher: delivers outbox actions through handlers, retries, records every attempt."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.trace import StatusCode

from orchestrator.actions import Action, ActionHandler, ActionResult
from orchestrator.clock import Clock
from orchestrator.incident.model import Actor, ActorKind
from orchestrator.instruments import SPAN_DELIVER, Instruments, parent
from orchestrator.store.protocols import OutboxItem, Store
from orchestrator.timeline import EntryDraft, Kind


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 2.0  # seconds; doubles each attempt
    max_delay: float = 600.0
    timeout: float = 30.0  # one delivery attempt
    # A vendor that answers "slow down, come back in N seconds" (429 + Retry-After) is not
    # failing: such attempts don't count against max_attempts, so a storm queues its channel
    # creations instead of losing them, up to this long after the action was enqueued.
    max_throttled: dt.timedelta = dt.timedelta(hours=6)

    def delay(self, key: str, attempts: int, retry_after: float | None) -> float:
        """The vendor's Retry-After when it gave one (it knows when it will take us again);
        otherwise exponential backoff with deterministic jitter (from the key, so runs are
        repeatable)."""
        if retry_after is not None:
            return float(retry_after)
        backoff = min(self.max_delay, self.base_delay * 2 ** max(attempts - 1, 0))
        jitter = int(hashlib.sha256(f"{key}:{attempts}".encode()).hexdigest()[:4], 16) / 0xFFFF
        backoff *= 0.75 + jitter / 2
        return float(backoff)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        handlers: Mapping[str, ActionHandler],
        clock: Clock,
        *,
        policy: RetryPolicy | None = None,
        lease: dt.timedelta = dt.timedelta(minutes=2),
        batch: int = 50,
        drill_id: str | None = None,
        instruments: Instruments | None = None,
    ) -> None:
        self.store = store
        self.instruments = instruments or Instruments.of()
        self.drill_id = drill_id  # a drill runner's dispatcher delivers that drill's only
        self.handlers = dict(handlers)
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.lease = lease
        self.batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Called after a pipeline commit so new actions go out without waiting for the poll."""
        self._wake.set()

    async def run_once(self) -> int:
        """Delivers what is due now; returns how many delivery attempts were made."""
        items = await self.store.claim_due_actions(
            self.clock.now(), self.batch, self.lease, self.drill_id
        )
        for item in items:
            await self._deliver(item)
        return len(items)

    async def drain(self) -> int:
        """Delivers until nothing is due now (retries scheduled for later stay pending)."""
        total = 0
        while attempts := await self.run_once():
            total += attempts
        return total

    async def run_forever(self, stop: asyncio.Event, poll: float = 1.0) -> None:
        while not stop.is_set():
            if await self.run_once():
                continue
            self._wake.clear()
            waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
            _, pending = await asyncio.wait(waiters, timeout=poll, return_when="FIRST_COMPLETED")
            for task in pending:
                task.cancel()

    async def _deliver(self, item: OutboxItem) -> None:
        action = item.action
        attempts: dict[str, str | int] = {"action": action.name, "incident": action.incident_number}
        # A child of the span that decided it: the alert's (or the command's) trace goes on.
        with self.instruments.tracer.start_as_current_span(
            SPAN_DELIVER, context=parent(action.trace), attributes=attempts
        ) as span:
            outcome = await self._attempt_and_record(item)
            span.set_attribute("outcome", outcome)
            if outcome != "delivered":
                span.set_status(StatusCode.ERROR, outcome)
        handler = self.handlers.get(action.name)
        by = {"handler": handler.name if handler else "", "action": action.name, "outcome": outcome}
        self.instruments.deliveries.add(1, by)

    async def _attempt_and_record(self, item: OutboxItem) -> str:
        """One attempt, and its result recorded; returns delivered, retrying or failed."""
        action = item.action
        attempt = item.attempts + 1
        history = await self.store.delivered_actions(action.incident_number)
        result = await self._attempt(dataclasses.replace(action, history=tuple(history)))
        now = self.clock.now()
        actor = Actor(ActorKind.SYSTEM, "dispatcher")
        base = {"key": action.key, "action": action.name, "attempt": attempt}
        retry_at: dt.datetime | None = None
        if result.ok:
            entry = EntryDraft(
                Kind.ACTION_SUCCEEDED,
                actor,
                now,
                {**base, "detail": result.detail, **_safe(result)},
            )
        elif result.retryable and (
            attempt < self.policy.max_attempts or self._throttled(item, result, now)
        ):
            delay = self.policy.delay(action.key, attempt, result.retry_after)
            retry_at = now + dt.timedelta(seconds=delay)
            entry = EntryDraft(
                Kind.ACTION_RETRYING,
                actor,
                now,
                {**base, "error": result.detail, "retry_at": retry_at.isoformat()},
            )
        else:
            reason = "gave up after the last attempt" if result.retryable else "not retryable"
            entry = EntryDraft(
                Kind.ACTION_FAILED, actor, now, {**base, "error": result.detail, "final": reason}
            )
        await self.store.finish_action(action.key, result, now, retry_at, [entry])
        return "delivered" if result.ok else "retrying" if retry_at is not None else "failed"

    def _throttled(self, item: OutboxItem, result: ActionResult, now: dt.datetime) -> bool:
        return result.retry_after is not None and now - item.created_at < self.policy.max_throttled

    async def _attempt(self, action: Action) -> ActionResult:
        handler = self.handlers.get(action.name)
        if handler is None:
            return ActionResult.failure(f"no handler is configured for {action.name}")
        try:
            async with asyncio.timeout(self.policy.timeout):
                return await handler.deliver(action)
        except TimeoutError:
            return ActionResult.failure(
                f"{handler.name}: no answer within {self.policy.timeout:g}s", retryable=True
            )
        except Exception as err:  # a handler bug must not stop the dispatcher; retry it
            return ActionResult.failure(
                f"{handler.name}: {type(err).__name__}: {err}", retryable=True
            )


def _safe(result: ActionResult) -> dict[str, object]:
    """What a handler returned for the record (ids, channel names), never raw vendor bodies."""
    return {"result": dict(result.data)} if result.data else {}
