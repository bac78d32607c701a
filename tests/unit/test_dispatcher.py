"""The dispatcher: outbox delivery through handlers, retries with backoff, results recorded."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator

import pytest

from handlers.recording import RecordingHandler
from orchestrator.actions import Action, ActionHandler, ActionResult
from orchestrator.app import route_handlers
from orchestrator.clock import ManualClock
from orchestrator.dispatcher import Dispatcher, RetryPolicy
from orchestrator.ingest.alert import SourceFormat
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.loader import parse_playbook
from orchestrator.playbook.playbookset import PlaybookSet
from orchestrator.store.protocols import OutboxItem, OutboxStatus
from orchestrator.store.sql import SqlStore
from orchestrator.timeline import Kind, TimelineEntry

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
KEY = "1:0:trigger:0"
PLAYBOOK = """\
name: one-post
match: ['alertname="DbDown"']
on_trigger:
  - slack.post: {channel: "#ops", text: "#{{ incident.number }} is down"}
"""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def store(clock: ManualClock) -> AsyncIterator[SqlStore]:
    """A store holding incident #1 with exactly one pending action: a slack.post."""
    opened = SqlStore("sqlite+aiosqlite:///:memory:")
    await opened.open()
    playbook, problems = parse_playbook(PLAYBOOK, "test.yaml", {})
    assert playbook is not None
    assert problems == []
    pipeline = Pipeline(opened, PlaybookSet([playbook]), clock)
    payload = {"labels": {"alertname": "DbDown"}, "starts_at": T0.isoformat()}
    report = await pipeline.ingest_bytes(
        json.dumps(payload).encode(), "test", format=SourceFormat.NATIVE
    )
    assert report.outcomes[0].incident_number == 1
    try:
        yield opened
    finally:
        await opened.close()


async def the_item(store: SqlStore) -> OutboxItem:
    (item,) = await store.list_actions()
    assert item.action.key == KEY
    return item


async def delivery_entries(store: SqlStore) -> list[TimelineEntry]:
    kinds = {Kind.ACTION_SUCCEEDED, Kind.ACTION_FAILED, Kind.ACTION_RETRYING}
    return [e for e in await store.timeline(1) if e.kind in kinds]


def dispatcher(
    store: SqlStore, clock: ManualClock, *handlers: ActionHandler, policy: RetryPolicy | None = None
) -> Dispatcher:
    return Dispatcher(store, route_handlers(handlers), clock, policy=policy)


async def test_pending_before_dispatch(store: SqlStore) -> None:
    item = await the_item(store)
    assert (item.status, item.attempts) == (OutboxStatus.PENDING, 0)
    assert item.action.params["text"] == "#1 is down"
    assert await delivery_entries(store) == []


async def test_success_is_delivered_and_recorded(store: SqlStore, clock: ManualClock) -> None:
    handler = RecordingHandler({"slack.post"})
    clock.advance(3)
    assert await dispatcher(store, clock, handler).run_once() == 1
    assert handler.names() == ["slack.post"]
    assert handler.delivered[0].params["channel"] == "#ops"
    item = await the_item(store)
    assert (item.status, item.attempts) == (OutboxStatus.DELIVERED, 1)
    assert item.delivered_at == clock.now()
    (entry,) = await delivery_entries(store)
    assert entry.kind is Kind.ACTION_SUCCEEDED
    assert entry.data["key"] == KEY
    assert entry.data["attempt"] == 1
    assert entry.data["detail"] == "recorded"
    assert entry.actor.id == "dispatcher"
    # Nothing is left to deliver: a second pass does nothing.
    assert await dispatcher(store, clock, handler).drain() == 0
    assert len(handler.attempts) == 1


async def test_result_data_is_kept(store: SqlStore, clock: ManualClock) -> None:
    handler = RecordingHandler(
        {"slack.post"}, {"slack.post": [ActionResult.success("ok", ts="1700000000.1")]}
    )
    await dispatcher(store, clock, handler).run_once()
    item = await the_item(store)
    assert item.result == {"ts": "1700000000.1"}
    (entry,) = await delivery_entries(store)
    assert entry.data["result"] == {"ts": "1700000000.1"}


async def test_retryable_failure_waits_for_retry_after(store: SqlStore, clock: ManualClock) -> None:
    throttled = ActionResult.failure("429 rate limited", retryable=True, retry_after=30)
    handler = RecordingHandler({"slack.post"}, {"slack.post": [throttled]})
    dispatch = dispatcher(store, clock, handler)
    assert await dispatch.run_once() == 1
    item = await the_item(store)
    assert (item.status, item.attempts) == (OutboxStatus.PENDING, 1)
    assert item.last_error == "429 rate limited"
    # Retry-After (30s) is longer than the first backoff (about 2s), so it wins.
    assert item.next_attempt_at == T0 + dt.timedelta(seconds=30)
    (entry,) = await delivery_entries(store)
    assert entry.kind is Kind.ACTION_RETRYING
    assert entry.data["retry_at"] == (T0 + dt.timedelta(seconds=30)).isoformat()
    assert entry.data["error"] == "429 rate limited"

    clock.advance(29)
    assert await dispatch.run_once() == 0  # not before the retry time
    assert len(handler.attempts) == 1
    clock.advance(1)
    assert await dispatch.run_once() == 1
    item = await the_item(store)
    assert (item.status, item.attempts) == (OutboxStatus.DELIVERED, 2)
    assert [e.kind for e in await delivery_entries(store)] == [
        Kind.ACTION_RETRYING,
        Kind.ACTION_SUCCEEDED,
    ]
    assert (await delivery_entries(store))[1].data["attempt"] == 2


async def test_retryable_failure_backs_off(store: SqlStore, clock: ManualClock) -> None:
    policy = RetryPolicy(base_delay=10.0)
    failure = ActionResult.failure("503", retryable=True)
    handler = RecordingHandler({"slack.post"}, {"slack.post": [failure]})
    dispatch = dispatcher(store, clock, handler, policy=policy)
    await dispatch.run_once()
    item = await the_item(store)
    delay = (item.next_attempt_at - T0).total_seconds()
    assert delay == pytest.approx(policy.delay(KEY, 1, None))
    assert 7.5 <= delay <= 12.5  # base delay with ±25% jitter
    clock.advance(delay - 0.5)
    assert await dispatch.run_once() == 0
    clock.advance(0.5)
    assert await dispatch.run_once() == 1
    assert (await the_item(store)).status is OutboxStatus.DELIVERED


def test_backoff_doubles_is_capped_and_deterministic() -> None:
    policy = RetryPolicy(base_delay=2.0, max_delay=60.0)
    delays = [policy.delay("k", attempt, None) for attempt in range(1, 10)]
    assert delays == [policy.delay("k", attempt, None) for attempt in range(1, 10)]
    for attempt, delay in enumerate(delays, start=1):
        nominal = min(60.0, 2.0 * 2 ** (attempt - 1))
        assert 0.75 * nominal <= delay <= 1.25 * nominal
    assert policy.delay("k", 1, 300.0) == 300.0


async def test_non_retryable_failure_fails_at_once(store: SqlStore, clock: ManualClock) -> None:
    rejected = ActionResult.failure("channel_not_found")
    handler = RecordingHandler({"slack.post"}, {"slack.post": [rejected]})
    dispatch = dispatcher(store, clock, handler)
    assert await dispatch.run_once() == 1
    item = await the_item(store)
    assert (item.status, item.attempts) == (OutboxStatus.FAILED, 1)
    assert item.last_error == "channel_not_found"
    (entry,) = await delivery_entries(store)
    assert entry.kind is Kind.ACTION_FAILED
    assert entry.data["final"] == "not retryable"
    clock.advance(dt.timedelta(hours=1))
    assert await dispatch.drain() == 0
    assert handler.delivered == []


async def test_max_attempts_exhausted_fails(store: SqlStore, clock: ManualClock) -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=1.0)
    failure = ActionResult.failure("502 bad gateway", retryable=True)
    handler = RecordingHandler({"slack.post"}, {"slack.post": [failure] * 5})
    dispatch = dispatcher(store, clock, handler, policy=policy)
    for _ in range(5):
        await dispatch.run_once()
        clock.advance(60)
    assert len(handler.attempts) == 3
    item = await the_item(store)
    assert (item.status, item.attempts) == (OutboxStatus.FAILED, 3)
    entries = await delivery_entries(store)
    assert [e.kind for e in entries] == [
        Kind.ACTION_RETRYING,
        Kind.ACTION_RETRYING,
        Kind.ACTION_FAILED,
    ]
    assert [e.data["attempt"] for e in entries] == [1, 2, 3]
    assert entries[-1].data["final"] == "gave up after the last attempt"


async def test_rate_limits_queue_instead_of_failing(store: SqlStore, clock: ManualClock) -> None:
    """429 + Retry-After does not use up attempts (an alert storm queues its channel creations),
    until the action has been throttled for longer than the policy allows."""
    policy = RetryPolicy(max_attempts=2, max_throttled=dt.timedelta(minutes=30))
    limited = ActionResult.failure("429 ratelimited", retryable=True, retry_after=60)
    handler = RecordingHandler({"slack.post"}, {"slack.post": [limited] * 10})
    dispatch = dispatcher(store, clock, handler, policy=policy)
    for _ in range(10):
        await dispatch.run_once()
        clock.advance(61)
    assert len(handler.attempts) == 10
    assert handler.delivered == []
    item = await the_item(store)
    assert (item.status, item.attempts) == (OutboxStatus.PENDING, 10)

    await dispatch.run_once()  # the 11th answer is success (the script ran out)
    assert (await the_item(store)).status is OutboxStatus.DELIVERED


async def test_throttling_gives_up_after_max_throttled(store: SqlStore, clock: ManualClock) -> None:
    policy = RetryPolicy(max_attempts=2, max_throttled=dt.timedelta(minutes=5))
    limited = ActionResult.failure("429 ratelimited", retryable=True, retry_after=120)
    handler = RecordingHandler({"slack.post"}, {"slack.post": [limited] * 10})
    dispatch = dispatcher(store, clock, handler, policy=policy)
    for _ in range(10):
        await dispatch.run_once()
        clock.advance(121)
    item = await the_item(store)
    assert item.status is OutboxStatus.FAILED
    assert len(handler.attempts) == 4  # at 0, 2, 4 minutes retried; at 6 minutes gave up


async def test_handlers_see_what_earlier_actions_returned(
    store: SqlStore, clock: ManualClock
) -> None:
    first = RecordingHandler({"slack.post"}, {"slack.post": [ActionResult.success("ok", ts="1.2")]})
    await dispatcher(store, clock, first).drain()
    assert first.attempts[0].history == ()
    async with store.transaction() as txn:
        follow_up = Action("1:0:update:0", "slack.update", {"text": "x"}, 1)
        await txn.enqueue_actions([follow_up], clock.now())
    second = RecordingHandler({"slack.update"})
    await dispatcher(store, clock, second).drain()
    [seen] = second.attempts
    assert [(d.name, d.key, dict(d.result)) for d in seen.history] == [
        ("slack.post", KEY, {"ts": "1.2"})
    ]
    assert seen.latest_result("slack.post", "ts") == "1.2"
    assert seen.latest_result("slack.post", "channel") is None
    assert seen.lane == "slack"


class RaisingHandler:
    """Raises on its first delivery, like a handler with a bug, then works."""

    name = "raising"
    handles = frozenset({"slack.post"})

    def __init__(self) -> None:
        self.calls = 0

    async def deliver(self, action: Action) -> ActionResult:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("boom")
        return ActionResult.success("second time lucky")


async def test_handler_exception_is_retried(store: SqlStore, clock: ManualClock) -> None:
    handler = RaisingHandler()
    dispatch = dispatcher(store, clock, handler)
    assert await dispatch.run_once() == 1
    item = await the_item(store)
    assert (item.status, item.attempts) == (OutboxStatus.PENDING, 1)
    assert item.last_error == "raising: RuntimeError: boom"
    clock.advance(dt.timedelta(minutes=10))
    assert await dispatch.run_once() == 1
    assert (await the_item(store)).status is OutboxStatus.DELIVERED
    assert [e.kind for e in await delivery_entries(store)] == [
        Kind.ACTION_RETRYING,
        Kind.ACTION_SUCCEEDED,
    ]


async def test_no_handler_fails(store: SqlStore, clock: ManualClock) -> None:
    other = RecordingHandler({"pagerduty.trigger"})
    dispatch = dispatcher(store, clock, other)
    assert await dispatch.run_once() == 1
    item = await the_item(store)
    assert (item.status, item.attempts) == (OutboxStatus.FAILED, 1)
    assert item.last_error == "no handler is configured for slack.post"
    (entry,) = await delivery_entries(store)
    assert entry.kind is Kind.ACTION_FAILED
    assert other.attempts == []


class HangingHandler:
    """Never answers: waits on an event nobody sets."""

    name = "hanging"
    handles = frozenset({"slack.post"})

    def __init__(self) -> None:
        self.never = asyncio.Event()

    async def deliver(self, action: Action) -> ActionResult:
        await self.never.wait()
        return ActionResult.success()


async def test_timeout_is_retryable(store: SqlStore, clock: ManualClock) -> None:
    dispatch = dispatcher(store, clock, HangingHandler(), policy=RetryPolicy(timeout=0.01))
    assert await dispatch.run_once() == 1
    item = await the_item(store)
    assert (item.status, item.attempts) == (OutboxStatus.PENDING, 1)
    assert item.last_error == "hanging: no answer within 0.01s"
    (entry,) = await delivery_entries(store)
    assert entry.kind is Kind.ACTION_RETRYING
    assert item.next_attempt_at > clock.now()


async def test_claimed_item_is_not_handed_out_twice(store: SqlStore, clock: ManualClock) -> None:
    lease = dt.timedelta(minutes=2)
    (claimed,) = await store.claim_due_actions(clock.now(), 10, lease)
    assert claimed.action.key == KEY
    assert await store.claim_due_actions(clock.now(), 10, lease) == []
    clock.advance(lease)
    # A crashed dispatcher's lease expires and the item is delivered by another.
    handler = RecordingHandler({"slack.post"})
    assert await dispatcher(store, clock, handler).run_once() == 1
    assert handler.names() == ["slack.post"]
