"""The whole service against the fake Slack and PagerDuty over real HTTP: an alert pages once and
opens one channel with the on-call in it; a signed button click acknowledges; a slash command
resolves in PagerDuty and updates Slack; replays and PagerDuty's echoes change nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fakes.pagerduty import FakePagerDuty
from fakes.pagerduty_webhooks import sign as sign_pagerduty
from fakes.server import Served, serve
from fakes.slack import BOT_TOKEN, FakeSlack
from fakes.slack_requests import block_action_body, signed_headers, slash_command_body
from samples import free_port

from orchestrator.app import App, build_app
from orchestrator.clock import SystemClock
from orchestrator.incident.model import ActorKind, Status
from orchestrator.service import Service
from orchestrator.settings import PagerDutyServiceSettings, Settings
from orchestrator.store.schema import outbox
from orchestrator.timeline import Kind

REPO = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "e2e-slack-signing-secret"
WEBHOOK_SECRET = "e2e-pagerduty-webhook-secret"
ROUTING_KEY = "R0UTINGKEYDATA000000000000000001"
PD_TOKEN = "fake-pagerduty-rest-token"
FORM = "application/x-www-form-urlencoded"
JSON = {"content-type": "application/json"}
PAGED_SERVICES = ("data-oncall", "security-oncall", "platform-oncall")
ALERT = {
    "labels": {
        "alertname": "PostgresDown",
        "env": "prod",
        "service": "orders-db",
        "cluster": "eu-west-1",
        "severity": "critical",
    },
    "annotations": {"summary": "orders-db primary is down <!channel>"},
    "starts_at": "2026-03-01T12:00:00+00:00",
}


@dataclass
class World:
    slack: FakeSlack
    pagerduty: FakePagerDuty
    app: App
    http: httpx.AsyncClient
    ada: str  # Ada's Slack user id; she is on call in PagerDuty

    async def until(self, check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
        async with asyncio.timeout(20):
            while True:
                result = check()
                if not isinstance(result, bool):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.05)
        raise AssertionError(what)

    async def slack_post(self, path: str, body: bytes) -> httpx.Response:
        now = int(SystemClock().now().timestamp())
        headers = signed_headers(body, timestamp=now, secret=SIGNING_SECRET, content_type=FORM)
        return await self.http.post(path, content=body, headers=headers)

    async def status(self) -> Status:
        incident = await self.app.store.get_incident(1)
        assert incident is not None
        return incident.status


@pytest.fixture
def pagerduty_account() -> tuple[FakePagerDuty, str]:
    fake = FakePagerDuty(routing_keys={ROUTING_KEY: "Data on-call"}, api_token=PD_TOKEN)
    service = next(iter(fake.services))
    ada = fake.add_user("Ada Lovelace", "ada@example.com")
    policy = fake.add_escalation_policy("Data", service_ids=(service,))
    fake.set_oncall(policy, 1, ada)
    return fake, policy


@pytest.fixture
async def world(
    tmp_path: Path, pagerduty_account: tuple[FakePagerDuty, str]
) -> AsyncIterator[World]:
    pagerduty, policy = pagerduty_account
    slack = FakeSlack()
    ada = slack.add_user("ada", "ada@example.com")
    slack.add_channel("incidents")
    port = free_port()
    tls = tmp_path / "tls"
    tls.mkdir()
    with slack.running() as slack_served, serve(pagerduty.app, tls_dir=tls) as pd_served:
        settings = settings_for(tmp_path, port, slack_served, pd_served, policy)
        app = await build_app(settings)
        service = Service(app)
        stop, ready = asyncio.Event(), asyncio.Event()
        running = asyncio.create_task(service.run(stop, on_ready=ready.set))
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")
        try:
            await asyncio.wait_for(ready.wait(), 10)
            world = World(slack, pagerduty, app, http, ada)
            await world.until(_answers(http), "the HTTP port answers")
            yield world
        finally:
            await http.aclose()
            stop.set()
            await asyncio.wait_for(running, 15)
            await app.close()
    assert slack.violations == []
    assert pagerduty.violations == []


def _answers(http: httpx.AsyncClient) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            return (await http.get("/healthz")).status_code == 200
        except httpx.ConnectError:
            return False

    return check


def settings_for(
    tmp_path: Path, port: int, slack: Served, pagerduty: Served, policy: str
) -> Settings:
    service = PagerDutyServiceSettings(routing_key=ROUTING_KEY, escalation_policy=policy)
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}",
        playbooks_dir=REPO / "playbooks",
        dry_run=False,
        http_port=port,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=f"{slack.url}/api/",
        pagerduty_services=dict.fromkeys(
            ("data-oncall", "security-oncall", "platform-oncall"), service
        ),
        pagerduty_api_token=PD_TOKEN,
        pagerduty_from_email="ada@example.com",
        pagerduty_webhook_secret=WEBHOOK_SECRET,
        pagerduty_events_url=pagerduty.url,
        pagerduty_api_url=pagerduty.url,
        vendor_ca_file=pagerduty.ca_file,
    )


async def test_alert_to_page_channel_ack_and_resolve(world: World) -> None:
    alert = json.dumps(ALERT).encode()
    accepted = await world.http.post("/api/v1/alerts", content=alert, headers=JSON)
    assert accepted.status_code == 202, accepted.text

    # Paged once; the channel opened once, with the on-call invited and the summary pinned.
    await world.until(lambda: len(world.pagerduty.incidents) == 1, "one PagerDuty incident")
    await world.until(lambda: bool(world.slack.pins), "the summary pinned")
    channel = next(c for c in world.slack.channels.values() if c.name.startswith("inc-1-"))
    assert world.ada in channel.members
    (pinned,) = world.slack.pins[channel.id]
    summary = world.slack.messages[channel.id][0]
    assert summary.ts == pinned
    assert "<!channel>" not in json.dumps(summary.blocks)  # the alert cannot mention everyone
    page = next(iter(world.pagerduty.incidents.values()))
    assert page.status == "triggered"

    # The same alert again (a retry, a replay after a crash): nothing new anywhere.
    assert (await world.http.post("/api/v1/alerts", content=alert, headers=JSON)).status_code == 202
    await asyncio.sleep(0.5)
    assert len(world.pagerduty.incidents) == 1
    assert world.pagerduty.incidents_created == 1
    assert len(world.slack.calls_to("conversations.create")) == 1

    # Ada clicks Acknowledge on the pinned summary (a signed request).
    click = block_action_body("incident.ack", "1", world.ada, channel.id, summary.ts)
    assert (await world.slack_post("/slack/interactions", click)).status_code == 200
    assert await world.status() is Status.ACKNOWLEDGED
    await world.until(lambda: page.status == "acknowledged", "acknowledged in PagerDuty")
    await world.until(
        lambda: bool(world.slack.calls_to("chat.update")), "the pinned summary updated"
    )

    # PagerDuty echoes the acknowledgement back: already acknowledged, nothing changes.
    pd_ada = next(iter(world.pagerduty.users))
    echo = world.pagerduty.webhook_body("incident.acknowledged", page.dedup_key, pd_ada)
    answered = await world.http.post(
        "/pagerduty/webhook",
        content=echo,
        headers={"X-PagerDuty-Signature": sign_pagerduty(echo, WEBHOOK_SECRET)},
    )
    assert answered.status_code == 200

    # /incident resolve in the channel: resolved here, in PagerDuty, and said in Slack.
    command = slash_command_body("/incident", "resolve", world.ada, channel.id)
    answer = await world.slack_post("/slack/commands", command)
    assert answer.json()["text"] == "Done: resolve on #1."
    assert await world.status() is Status.RESOLVED
    await world.until(lambda: page.status == "resolved", "resolved in PagerDuty")

    entries = await world.app.store.timeline(1)
    acked = [e for e in entries if e.kind is Kind.INCIDENT_ACKNOWLEDGED]
    assert [(e.actor.kind, e.actor.id) for e in acked] == [(ActorKind.SLACK, world.ada)]
    oncall = next(
        e
        for e in entries
        if e.kind is Kind.ACTION_SUCCEEDED and e.data["action"] == "pagerduty.trigger"
    )
    assert [p["email"] for p in oncall.data["result"]["oncall"]] == ["ada@example.com"]


async def test_slack_down_for_a_while_loses_and_doubles_nothing(world: World) -> None:
    world.slack.outage(True)
    alert = json.dumps(ALERT).encode()
    assert (await world.http.post("/api/v1/alerts", content=alert, headers=JSON)).status_code == 202
    await world.until(lambda: len(world.pagerduty.incidents) == 1, "paged despite Slack")
    await world.until(lambda: len(world.slack.calls) >= 1, "Slack was tried")
    assert incident_channels(world) == []
    world.slack.outage(False)
    # The dispatcher retries on its backoff; waking it stands in for the time passing.
    for _ in range(40):
        world.app.dispatcher.wake()
        if world.slack.pins:
            break
        await _advance_retries(world)
    assert len(incident_channels(world)) == 1
    items = [i for i in await world.app.store.list_actions(1) if i.action.lane == "slack"]
    assert all(i.status.value == "delivered" for i in items), [i.status for i in items]
    delivered = sorted(items, key=lambda i: i.delivered_at or i.created_at)
    assert delivered[0].action.name == "slack.open_channel"
    channel = next(c for c in world.slack.channels.values() if c.name.startswith("inc-1-"))
    texts = [m.text for m in world.slack.messages[channel.id]]
    assert len(texts) == len(set(texts)) >= 2  # the summary and the playbook's post, once each
    assert len(world.slack.calls_to("conversations.create")) >= 2  # refused, then the one


def incident_channels(world: World) -> list[str]:
    return [c.name for c in world.slack.channels.values() if c.name.startswith("inc-1-")]


async def _advance_retries(world: World) -> None:
    """Makes pending retries due now, as if their backoff had passed."""
    due_now = (
        sa.update(outbox)
        .where(outbox.c.status == "pending")
        .values(next_attempt_at=SystemClock().now())
    )

    def write() -> None:
        with world.app.store.engine.begin() as conn:
            conn.execute(due_now)

    await asyncio.to_thread(write)
    await asyncio.sleep(0.1)
