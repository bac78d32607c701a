"""The ActionHandler contract, run against every handler: what the dispatcher may rely on."""

# Not covered: orchestrator.ingest.kafka.KafkaEventPublisher. It needs a real Kafka broker (there
# is no fake one), and its vendor errors are broker errors, not HTTP answers, so none of the
# throttle/outage/refusal steps below can be staged for it. tests/integration/
# test_lifecycle_events.py exercises it against a broker when one is configured.

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from fakes.pagerduty import FakePagerDuty
from fakes.server import serve
from fakes.slack import BOT_TOKEN, FakeSlack

from handlers.console import ConsoleHandler
from handlers.pagerduty import PagerDutyHandler, PagerDutyService
from handlers.recording import RecordingHandler
from handlers.slack import SlackHandler
from orchestrator.actions import Action, ActionHandler, ActionResult
from orchestrator.app import route_handlers
from orchestrator.clock import ManualClock
from orchestrator.dispatcher import Dispatcher
from orchestrator.incident.model import Incident, Severity, Status
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import PlaybookLoadError, load_playbooks
from orchestrator.store.protocols import OutboxStatus
from orchestrator.store.sql import SqlStore
from orchestrator.timeline import Kind

T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
KEY = "1:0:trigger:0"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
ENQUEUE = "/v2/enqueue"
RETRY_AFTER = 7
RIGS = ["pagerduty", "slack", "recording"]
# One valid step per action in the vocabulary, so a playbook fails only on who delivers it.
EXAMPLE_STEPS = {
    "pagerduty.trigger": "pagerduty.trigger: {service: data-oncall}",
    "pagerduty.escalate": "pagerduty.escalate: {level: 2}",
    "pagerduty.acknowledge": "pagerduty.acknowledge",
    "pagerduty.resolve": "pagerduty.resolve",
    "slack.open_channel": "slack.open_channel: {name: inc-1}",
    "slack.post": "slack.post: {channel: '#incidents', text: hi}",
}


def facts() -> dict[str, Any]:
    """The incident snapshot the pipeline puts in every action's params."""
    return {
        "number": 1,
        "title": "orders-db: database unavailable",
        "status": "triggered",
        "severity": "SEV1",
        "service": "orders-db",
        "team": "team-data",
        "summary": "orders-db primary is down",
        "commander": "",
        "declared_at": T0.isoformat(),
        "is_drill": False,
        "playbook": "database-unavailable",
        "playbook_version": "3f2a",
        "runbook": "https://runbooks.example/db-down",
        "labels": {"alertname": "PostgresDown", "service": "orders-db"},
    }


class Rig(Protocol):
    """One handler wired to its vendor (or script), and the levers the contract pulls."""

    @property
    def handler(self) -> ActionHandler: ...

    def action(self, key: str) -> Action:
        """A representative action the handler delivers, for incident #1."""
        ...

    def throttle_next(self) -> None:
        """The next vendor call answers 429 with Retry-After: RETRY_AFTER."""
        ...

    def fail_next(self) -> None:
        """The next vendor call answers 503."""
        ...

    def refuse_next(self) -> None:
        """The next vendor call is refused as invalid: retrying it cannot help."""
        ...

    def outage(self, on: bool) -> None: ...

    def requests(self) -> int:
        """Vendor calls made for the representative action, answered or not."""
        ...

    def deliveries(self) -> int:
        """Vendor calls that succeeded."""
        ...

    def seen_key(self) -> str:
        """The idempotency key the vendor received on the last call (skips without one)."""
        ...

    def violations(self) -> list[str]:
        """Requests that broke the vendor's published API contract."""
        ...


@dataclass
class PagerDutyRig:
    fake: FakePagerDuty
    handler: PagerDutyHandler

    def action(self, key: str) -> Action:
        params = {"service": "data-oncall", "urgency": "high", "incident": facts()}
        return Action(key, "pagerduty.trigger", params, incident_number=1)

    def throttle_next(self) -> None:
        self.fake.fail_next(ENQUEUE, status=429, retry_after=RETRY_AFTER)

    def fail_next(self) -> None:
        self.fake.fail_next(ENQUEUE, status=503)

    def refuse_next(self) -> None:
        self.fake.fail_next(ENQUEUE, status=400)

    def outage(self, on: bool) -> None:
        self.fake.outage(on)

    def requests(self) -> int:
        return sum(1 for request in self.fake.requests if request.path == ENQUEUE)

    def deliveries(self) -> int:
        return sum(1 for event in self.fake.events if event.status == 202)

    def seen_key(self) -> str:
        return str(self.fake.events[-1].body["dedup_key"])

    def violations(self) -> list[str]:
        return self.fake.violations


@dataclass
class SlackRig:
    fake: FakeSlack
    handler: SlackHandler

    def action(self, key: str) -> Action:
        params = {"channel": "#incidents", "text": "SEV1 #1 orders-db", "incident": facts()}
        return Action(key, "slack.post", params, incident_number=1)

    def throttle_next(self) -> None:
        self.fake.fail_next("chat.postMessage", status=429, retry_after=RETRY_AFTER)

    def fail_next(self) -> None:
        self.fake.fail_next("chat.postMessage", status=503)

    def refuse_next(self) -> None:
        # `ok: false` on HTTP 200: Slack's way of saying the request itself is wrong.
        self.fake.fail_next("chat.postMessage", error="msg_too_long")

    def outage(self, on: bool) -> None:
        self.fake.outage(on)

    def requests(self) -> int:
        return len(self.fake.calls_to("chat.postMessage"))

    def deliveries(self) -> int:
        calls = self.fake.calls_to("chat.postMessage")
        return sum(1 for call in calls if call.status == 200 and call.error is None)

    def keyed_action(self, key: str) -> Action:
        # chat.postMessage takes no idempotency key; the action whose key Slack keeps is the
        # channel creation, whose purpose carries it so a retry finds its own channel.
        params = {"name": "inc-1-orders-db", "topic": "SEV1", "invite": [], "incident": facts()}
        return Action(key, "slack.open_channel", params, incident_number=1)

    def seen_key(self) -> str:
        (channel,) = [c for c in self.fake.channels.values() if c.name == "inc-1-orders-db"]
        found = re.search(r"\[incident-orchestrator (\S+)\]", channel.purpose)
        assert found is not None, channel.purpose
        return found.group(1)

    def violations(self) -> list[str]:
        return self.fake.violations


@dataclass
class RecordingRig:
    handler: RecordingHandler
    name: str = "slack.post"
    down: bool = False

    def action(self, key: str) -> Action:
        return Action(key, self.name, {"text": "hi", "incident": facts()}, incident_number=1)

    def throttle_next(self) -> None:
        throttled = ActionResult.failure("429", retryable=True, retry_after=RETRY_AFTER)
        self.handler.then(self.name, throttled)

    def fail_next(self) -> None:
        self.handler.then(self.name, ActionResult.failure("503", retryable=True))

    def refuse_next(self) -> None:
        self.handler.then(self.name, ActionResult.failure("400 invalid"))

    def outage(self, on: bool) -> None:
        # An outage that lasts however many attempts are made while it is on.
        self.handler.forget(self.name)
        if on:
            self.handler.then(self.name, *[ActionResult.failure("503", retryable=True)] * 100)

    def requests(self) -> int:
        return len(self.handler.attempts)

    def deliveries(self) -> int:
        return len(self.handler.delivered)

    def seen_key(self) -> str:
        return self.handler.attempts[-1].key

    def violations(self) -> list[str]:
        return []


@contextlib.asynccontextmanager
async def open_rig(kind: str, tmp_path: Path, clock: ManualClock) -> AsyncIterator[Rig]:
    """The rig for `kind`, with its fake vendor served for the duration."""
    if kind == "pagerduty":
        pagerduty = FakePagerDuty(routing_keys={ROUTING_KEY: "Data on-call"}, clock=clock)
        with serve(pagerduty.app, tls_dir=tmp_path) as served:
            # No REST token: a trigger is then exactly one Events API request to count.
            paging = PagerDutyHandler(
                {"data-oncall": PagerDutyService(ROUTING_KEY)},
                events_url=served.url,
                verify=served.ssl_context(),
            )
            try:
                yield PagerDutyRig(pagerduty, paging)
            finally:
                await paging.close()
    elif kind == "slack":
        slack = FakeSlack(clock=clock)
        slack.add_channel("incidents")
        with slack.running() as served:
            chat = SlackHandler(BOT_TOKEN, base_url=f"{served.url}/api/", clock=clock)
            try:
                yield SlackRig(slack, chat)
            finally:
                await chat.close()
    elif kind == "recording":
        yield RecordingRig(RecordingHandler({"slack.post"}))
    else:
        raise ValueError(f"no rig for {kind!r}")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture(params=RIGS)
async def rig(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[Rig]:
    async with open_rig(request.param, tmp_path, clock) as opened:
        yield opened
        assert opened.violations() == []


@pytest.fixture(params=[*RIGS, "console"])
async def any_handler(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[ActionHandler]:
    if request.param == "console":
        yield ConsoleHandler({"slack.post", "slack.open_channel"})
        return
    async with open_rig(request.param, tmp_path, clock) as opened:
        yield opened.handler


# At playbook load


async def test_an_action_the_handler_does_not_deliver_is_refused_at_load(
    any_handler: ActionHandler, tmp_path: Path
) -> None:
    handled = sorted(ACTION_NAMES & any_handler.handles)[0]
    foreign = sorted(ACTION_NAMES - any_handler.handles)[0]
    path = tmp_path / "playbooks" / "10-contract.yaml"
    path.parent.mkdir()
    path.write_text(
        "name: contract\n"
        "match: ['alertname=\"DbDown\"']\n"
        "on_trigger:\n"
        f"  - {EXAMPLE_STEPS[handled]}\n"
        f"  - {EXAMPLE_STEPS[foreign]}\n",
        encoding="utf-8",
    )
    with pytest.raises(PlaybookLoadError) as refused:
        load_playbooks(path.parent, known_actions=any_handler.handles)
    assert [str(p) for p in refused.value.problems] == [
        f"{path}:5:5: no configured handler delivers {foreign!r}"
    ]


# One delivery


async def test_a_delivery_succeeds_with_one_request(rig: Rig) -> None:
    result = await rig.handler.deliver(rig.action(KEY))
    assert result.ok, result.detail
    assert (rig.requests(), rig.deliveries()) == (1, 1)


@pytest.mark.parametrize(
    ("stage", "retry_after"),
    [(lambda rig: rig.fail_next(), None), (lambda rig: rig.throttle_next(), RETRY_AFTER)],
    ids=["503", "429"],
)
async def test_a_vendor_error_is_a_retryable_failure_after_one_request(
    rig: Rig, stage: Callable[[Rig], None], retry_after: int | None
) -> None:
    stage(rig)
    result = await rig.handler.deliver(rig.action(KEY))
    assert (result.ok, result.retryable) == (False, True), result.detail
    if retry_after is not None:
        assert result.retry_after == retry_after
    # The dispatcher owns retries and backoff: a handler that retried itself would hide
    # the vendor's answer and hold the dispatcher's worker for its whole backoff.
    assert (rig.requests(), rig.deliveries()) == (1, 0)


async def test_a_refused_request_is_not_retried(rig: Rig) -> None:
    rig.refuse_next()
    result = await rig.handler.deliver(rig.action(KEY))
    assert (result.ok, result.retryable) == (False, False), result.detail
    assert (rig.requests(), rig.deliveries()) == (1, 0)


async def test_the_action_key_reaches_the_vendor(rig: Rig) -> None:
    keyed = getattr(rig, "keyed_action", rig.action)
    result = await rig.handler.deliver(keyed(KEY))
    assert result.ok, result.detail
    assert rig.seen_key().endswith(KEY)


# Behind the real dispatcher


async def open_incident(store: SqlStore) -> int:
    async with store.transaction() as txn:
        number = await txn.allocate_incident_number()
        incident = Incident(
            number=number,
            title="orders-db: database unavailable",
            status=Status.TRIGGERED,
            severity=Severity.SEV1,
            max_severity=Severity.SEV1,
            playbook="database-unavailable",
            playbook_version="3f2a",
            group_key="service=orders-db",
            group_labels={"service": "orders-db"},
            declared_at=T0,
            updated_at=T0,
            service="orders-db",
        )
        await txn.insert_incident(incident)
    return number


@pytest.fixture
async def store() -> AsyncIterator[SqlStore]:
    opened = SqlStore("sqlite+aiosqlite:///:memory:")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_an_outage_is_retried_by_the_dispatcher_and_delivered_once(
    rig: Rig, store: SqlStore, clock: ManualClock
) -> None:
    assert await open_incident(store) == 1  # the incident every rig's action belongs to
    async with store.transaction() as txn:
        await txn.enqueue_actions([rig.action(KEY)], clock.now())
    dispatcher = Dispatcher(store, route_handlers([rig.handler]), clock)

    rig.outage(True)
    assert await dispatcher.run_once() == 1
    (item,) = await store.list_actions(1)
    assert (item.status, item.attempts) == (OutboxStatus.PENDING, 1)
    retry_at = item.next_attempt_at
    assert retry_at is not None
    assert retry_at > clock.now()
    assert await dispatcher.run_once() == 0  # not due before its retry time

    rig.outage(False)
    clock.set(retry_at)
    assert await dispatcher.drain() == 1
    (item,) = await store.list_actions(1)
    assert (item.status, item.attempts) == (OutboxStatus.DELIVERED, 2)
    assert (rig.requests(), rig.deliveries()) == (2, 1)
    kinds = {Kind.ACTION_SUCCEEDED, Kind.ACTION_FAILED, Kind.ACTION_RETRYING}
    entries = [e for e in await store.timeline(1) if e.kind in kinds]
    assert [(e.kind, e.data["key"]) for e in entries] == [
        (Kind.ACTION_RETRYING, KEY),
        (Kind.ACTION_SUCCEEDED, KEY),
    ]
    assert entries[0].data["retry_at"] == retry_at.isoformat()
