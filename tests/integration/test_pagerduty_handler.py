"""The PagerDuty handler against the fake PagerDuty over https, alone and behind the dispatcher."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.pagerduty import FakePagerDuty
from fakes.server import Served, serve

from handlers.pagerduty import PagerDutyHandler, PagerDutyService
from orchestrator.actions import Action, ActionResult, Delivered
from orchestrator.app import route_handlers
from orchestrator.clock import ManualClock
from orchestrator.dispatcher import Dispatcher
from orchestrator.ingest.alert import SourceFormat
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.loader import parse_playbook
from orchestrator.playbook.playbookset import PlaybookSet
from orchestrator.store.protocols import OutboxStatus
from orchestrator.store.sql import SqlStore

T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
TOKEN = "y_NbAkKc66ryYTWUXYEu"
ENQUEUE = "/v2/enqueue"
TRIGGER_KEY = "7:0:trigger:0"
CHANNEL_URL = "https://example.slack.com/archives/C0INC7"


class Account:
    """A service routed to a three-level policy: Ada, then Grace, then Linus."""

    def __init__(self, fake: FakePagerDuty) -> None:
        self.service = next(iter(fake.services))
        self.ada = fake.add_user("Ada Lovelace", "ada@example.com")
        self.grace = fake.add_user("Grace Hopper", "grace@example.com")
        self.linus = fake.add_user("Linus Torvalds", "linus@example.com")
        self.primary = fake.add_schedule("Primary rotation")
        self.policy = fake.add_escalation_policy("Data", service_ids=(self.service,))
        fake.set_oncall(self.policy, 1, self.ada, self.primary)
        fake.set_oncall(self.policy, 2, self.grace)
        fake.set_oncall(self.policy, 3, self.linus)


@pytest.fixture
def fake() -> FakePagerDuty:
    return FakePagerDuty(
        routing_keys={ROUTING_KEY: "Data on-call"}, api_token=TOKEN, clock=ManualClock(T0)
    )


@pytest.fixture
def account(fake: FakePagerDuty) -> Account:
    return Account(fake)


@pytest.fixture
def served(fake: FakePagerDuty, account: Account, tmp_path: Path) -> Iterator[Served]:
    with serve(fake.app, tls_dir=tmp_path) as running:
        yield running


def make_handler(served: Served, account: Account, **options: Any) -> PagerDutyHandler:
    settings: dict[str, Any] = {
        "api_token": TOKEN,
        "events_url": served.url,
        "rest_url": served.url,
        "verify": served.ssl_context(),
        "from_email": "ada@example.com",
    }
    settings.update(options)
    services = {"data-oncall": PagerDutyService(ROUTING_KEY, account.policy)}
    return PagerDutyHandler(services, **settings)


@pytest.fixture
async def handler(served: Served, account: Account) -> AsyncIterator[PagerDutyHandler]:
    opened = make_handler(served, account)
    yield opened
    await opened.close()


def facts(**changes: Any) -> dict[str, Any]:
    snapshot: dict[str, Any] = {
        "number": 7,
        "title": "orders-db: database unavailable",
        "status": "triggered",
        "severity": "SEV1",
        "service": "orders-db",
        "team": "team-data",
        "summary": "orders-db primary is down",
        "commander": None,
        "declared_at": T0.isoformat(),
        "is_drill": False,
        "playbook": "database-unavailable",
        "playbook_version": "3f2a",
        "runbook": "https://runbooks.example/db-down",
        "labels": {"alertname": "PostgresDown", "service": "orders-db", "component": "primary"},
    }
    snapshot.update(changes)
    return snapshot


def action(
    name: str = "pagerduty.trigger",
    params: dict[str, Any] | None = None,
    *,
    key: str = TRIGGER_KEY,
    history: tuple[Delivered, ...] = (),
    incident: dict[str, Any] | None = None,
) -> Action:
    if params is None:
        params = {"service": "data-oncall", "urgency": "high"} if name.endswith("trigger") else {}
    params = {**params, "incident": incident or facts()}
    return Action(key, name, params, incident_number=7, history=history)


def delivered(result: ActionResult, key: str = TRIGGER_KEY) -> Delivered:
    assert result.ok, result.detail
    return Delivered("pagerduty.trigger", key, result.data)


def attempts(fake: FakePagerDuty, path: str = ENQUEUE) -> int:
    return sum(1 for request in fake.requests if request.path == path)


# pagerduty.trigger


async def test_a_trigger_opens_one_incident_with_the_mapped_fields(
    fake: FakePagerDuty, handler: PagerDutyHandler, account: Account
) -> None:
    opened = Delivered("slack.open_channel", "7:0:trigger:1", {"channel_url": CHANNEL_URL})
    result = await handler.deliver(action(history=(opened,)))
    assert result.ok, result.detail
    assert result.data["dedup_key"] == "orch-7:0:trigger:0"
    assert result.data["service"] == "data-oncall"
    assert fake.incidents_created == 1
    incident = fake.incidents["orch-7:0:trigger:0"]
    # Its page, for the Slack bookmark.
    assert result.data["incident_id"] == incident.id
    assert result.data["incident_url"].endswith(f"/incidents/{incident.id}")
    assert (incident.summary, incident.severity, incident.source) == (
        "orders-db: database unavailable",
        "critical",
        "orders-db",
    )
    assert incident.custom_details == {
        "incident": 7,
        "severity": "SEV1",
        "urgency": "high",
        "playbook": "database-unavailable",
        "labels": {"alertname": "PostgresDown", "service": "orders-db", "component": "primary"},
    }
    assert incident.links == [
        {"href": "https://runbooks.example/db-down", "text": "Runbook"},
        {"href": CHANNEL_URL, "text": "Slack channel"},
    ]
    payload = fake.events[0].body["payload"]
    assert (payload["component"], payload["group"], payload["class"]) == (
        "primary",
        "team-data",
        "PostgresDown",
    )
    # Who was on call when the page went out, for the record.
    assert result.data["oncall"] == [
        {"level": 1, "user_id": account.ada, "name": "Ada Lovelace", "email": "ada@example.com"},
        {
            "level": 2,
            "user_id": account.grace,
            "name": "Grace Hopper",
            "email": "grace@example.com",
        },
        {
            "level": 3,
            "user_id": account.linus,
            "name": "Linus Torvalds",
            "email": "linus@example.com",
        },
    ]
    assert PagerDutyHandler.oncall_emails(result.data["oncall"], max_level=2) == [
        "ada@example.com",
        "grace@example.com",
    ]
    assert fake.violations == []


async def test_on_call_by_schedule_when_no_policy_is_given(
    fake: FakePagerDuty, served: Served, account: Account
) -> None:
    handler = make_handler(served, account)
    handler.services["data-oncall"] = PagerDutyService(ROUTING_KEY, schedule=account.primary)
    try:
        people = await handler.oncall("data-oncall")
    finally:
        await handler.close()
    assert [(p["level"], p["email"]) for p in people] == [(1, "ada@example.com")]
    assert fake.violations == []


async def test_the_same_trigger_twice_is_still_one_incident(
    fake: FakePagerDuty, handler: PagerDutyHandler
) -> None:
    first = await handler.deliver(action())
    again = await handler.deliver(action())
    assert first.ok
    assert again.ok
    assert first.data["dedup_key"] == again.data["dedup_key"]
    assert (fake.incidents_created, fake.deduplicated) == (1, 1)
    assert fake.violations == []


async def test_summary_severity_and_defaults(
    fake: FakePagerDuty, handler: PagerDutyHandler
) -> None:
    long = "x" * 2000
    bare = facts(severity="SEV4", service=None, team=None, runbook="", labels={})
    params = {"service": "data-oncall", "urgency": "low", "summary": long}
    result = await handler.deliver(action(params=params, incident=bare))
    assert result.ok, result.detail
    body = fake.events[0].body
    payload = body["payload"]
    assert len(payload["summary"]) == 1024
    assert payload["summary"].endswith("…")
    assert (payload["severity"], payload["source"]) == ("info", "incident-orchestrator")
    assert not {"component", "group", "class"} & set(payload)
    assert payload["custom_details"]["urgency"] == "low"
    assert "links" not in body
    assert fake.violations == []


async def test_an_unknown_service_is_not_retried(
    fake: FakePagerDuty, handler: PagerDutyHandler
) -> None:
    result = await handler.deliver(action(params={"service": "payments"}))
    assert (result.ok, result.retryable) == (False, False)
    assert "'payments'" in result.detail
    assert "data-oncall" in result.detail
    assert fake.requests == []


async def test_a_429_is_one_request_and_carries_retry_after(
    fake: FakePagerDuty, handler: PagerDutyHandler
) -> None:
    fake.fail_next(ENQUEUE, status=429, retry_after=30, times=5)
    result = await handler.deliver(action())
    assert (result.ok, result.retryable, result.retry_after) == (False, True, 30.0)
    assert "429" in result.detail
    assert attempts(fake) == 1  # the dispatcher, not the client, decides when to try again
    assert fake.incidents_created == 0


async def test_an_outage_is_retryable_after_one_request(
    fake: FakePagerDuty, handler: PagerDutyHandler
) -> None:
    fake.outage(True)
    result = await handler.deliver(action())
    assert (result.ok, result.retryable, result.retry_after) == (False, True, None)
    assert "503" in result.detail
    assert attempts(fake) == 1


async def test_a_500_on_the_rest_api_is_one_request(
    fake: FakePagerDuty, handler: PagerDutyHandler
) -> None:
    fake.fail_next("/oncalls", status=500)
    result = await handler.deliver(action())
    # The page went out; only the on-call lookup failed, and that does not fail the page.
    assert result.ok, result.detail
    assert "oncall" not in result.data
    assert "500" in result.data["oncall_error"]
    assert attempts(fake, "/oncalls") == 1
    assert fake.incidents_created == 1


async def test_a_400_is_not_retryable_and_says_why(
    fake: FakePagerDuty, handler: PagerDutyHandler
) -> None:
    refusal = {"status": "invalid event", "message": "Event object is invalid", "errors": ["x"]}
    fake.fail_next(ENQUEUE, status=400, body=refusal)
    result = await handler.deliver(action())
    assert (result.ok, result.retryable) == (False, False)
    assert "Event object is invalid: x" in result.detail


async def test_a_timeout_is_retryable(
    fake: FakePagerDuty, served: Served, account: Account
) -> None:
    slow = make_handler(served, account, timeout=0.1)
    fake.delay(0.5)
    try:
        result = await slow.deliver(action())
    finally:
        await slow.close()
    assert (result.ok, result.retryable) == (False, True)
    assert "unreachable" in result.detail


# pagerduty.acknowledge / pagerduty.resolve


async def test_acknowledge_and_resolve_use_every_paged_key(
    fake: FakePagerDuty, handler: PagerDutyHandler
) -> None:
    first = await handler.deliver(action())
    again = await handler.deliver(action(key="7:0:escalation-1:0"))
    history = (delivered(first), delivered(again, "7:0:escalation-1:0"))
    keys = ["orch-7:0:trigger:0", "orch-7:0:escalation-1:0"]

    acked = await handler.deliver(action("pagerduty.acknowledge", history=history))
    assert acked.ok, acked.detail
    assert acked.data["dedup_keys"] == keys
    assert [fake.incidents[key].status for key in keys] == ["acknowledged"] * 2

    resolved = await handler.deliver(action("pagerduty.resolve", history=history))
    assert resolved.ok, resolved.detail
    assert [fake.incidents[key].status for key in keys] == ["resolved"] * 2
    sent = [(e.body["event_action"], e.body["dedup_key"]) for e in fake.events[2:]]
    assert sent == [
        ("acknowledge", keys[0]),
        ("acknowledge", keys[1]),
        ("resolve", keys[0]),
        ("resolve", keys[1]),
    ]
    assert fake.violations == []


async def test_nothing_paged_means_nothing_to_send(
    fake: FakePagerDuty, handler: PagerDutyHandler
) -> None:
    dry = Delivered("pagerduty.trigger", TRIGGER_KEY, {"dry_run": "true"})
    for name in ("pagerduty.acknowledge", "pagerduty.resolve", "pagerduty.escalate"):
        params = {"level": 2} if name.endswith("escalate") else {}
        result = await handler.deliver(action(name, params, history=(dry,)))
        assert result.ok
        assert result.detail == "nothing was paged for this incident"
    assert fake.requests == []


# pagerduty.escalate


async def test_escalate_moves_the_incident_to_the_level(
    fake: FakePagerDuty, handler: PagerDutyHandler, account: Account
) -> None:
    history = (delivered(await handler.deliver(action())),)
    incident = fake.incidents["orch-7:0:trigger:0"]
    assert fake.assignees(incident) == [account.ada]
    result = await handler.deliver(action("pagerduty.escalate", {"level": 2}, history=history))
    assert result.ok, result.detail
    assert result.data == {
        "dedup_key": "orch-7:0:trigger:0",
        "incident_id": incident.id,
        "escalation_level": 2,
    }
    assert incident.escalation_level == 2
    assert fake.assignees(incident) == [account.grace]
    assert [r.method for r in fake.requests if r.path == f"/incidents/{incident.id}"] == ["PUT"]

    beyond = await handler.deliver(action("pagerduty.escalate", {"level": 9}, history=history))
    assert (beyond.ok, beyond.retryable) == (False, False)
    assert "Escalation level 9" in beyond.detail
    assert fake.violations == []


async def test_escalate_needs_the_rest_settings(served: Served, account: Account) -> None:
    paged = (Delivered("pagerduty.trigger", TRIGGER_KEY, {"dedup_key": "orch-7:0:trigger:0"}),)
    escalate = action("pagerduty.escalate", {"level": 2}, history=paged)
    for missing, expected in (({"api_token": None}, "api_token"), ({"from_email": None}, "from")):
        limited = make_handler(served, account, **missing)
        try:
            result = await limited.deliver(escalate)
        finally:
            await limited.close()
        assert (result.ok, result.retryable) == (False, False)
        assert f"no {expected}" in result.detail


# Behind the dispatcher

PLAYBOOK = """\
name: page-data
match: ['alertname="DbDown"']
on_trigger:
  - pagerduty.trigger: {service: data-oncall}
"""


async def test_an_outage_then_recovery_pages_once(
    fake: FakePagerDuty, handler: PagerDutyHandler
) -> None:
    clock = ManualClock(T0)
    store = SqlStore("sqlite+aiosqlite:///:memory:")
    await store.open()
    try:
        playbook, problems = parse_playbook(PLAYBOOK, "test.yaml", {})
        assert playbook is not None, problems
        pipeline = Pipeline(store, PlaybookSet([playbook]), clock)
        alert = {"labels": {"alertname": "DbDown"}, "starts_at": T0.isoformat()}
        await pipeline.ingest_bytes(json.dumps(alert).encode(), "test", format=SourceFormat.NATIVE)
        dispatcher = Dispatcher(store, route_handlers([handler]), clock)

        fake.outage(True)
        assert await dispatcher.run_once() == 1
        (item,) = await store.list_actions(1)
        assert (item.status, item.attempts) == (OutboxStatus.PENDING, 1)
        assert item.next_attempt_at is not None
        fake.outage(False)
        clock.set(item.next_attempt_at)
        assert await dispatcher.drain() == 1
        (item,) = await store.list_actions(1)
        assert (item.status, item.attempts) == (OutboxStatus.DELIVERED, 2)
        assert item.result["dedup_key"] == "orch-1:0:trigger:0"
        assert item.result["oncall"][0]["email"] == "ada@example.com"
    finally:
        await store.close()
    assert attempts(fake) == 2
    assert fake.incidents_created == 1
    assert fake.violations == []
