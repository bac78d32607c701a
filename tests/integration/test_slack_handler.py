"""The Slack handler against the fake Slack over real HTTP: opening incident channels (once, even
after a lost result), posting, refreshing the pinned summary, and every failure as a result the
dispatcher can act on; then the whole path from an alert through the real dispatcher."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fakes.server import Served
from fakes.slack import BOT_TOKEN, FakeSlack, Message

from handlers.recording import RecordingHandler
from handlers.slack import SlackHandler
from handlers.slack_naming import channel_name
from orchestrator.actions import Action, ActionResult, Delivered
from orchestrator.app import route_handlers
from orchestrator.clock import ManualClock
from orchestrator.dispatcher import Dispatcher
from orchestrator.incident.events import StatusChange
from orchestrator.incident.model import Actor, ActorKind, Status
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.store.protocols import OutboxStatus
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[2]
PEOPLE = [("alice", "alice@example.com"), ("bob", "bob@example.com"), ("carol", "carol@x.io")]
KEY = "1:0:trigger:1"
MARKER = f"[incident-orchestrator {KEY}]"
PD_URL = "https://acme.pagerduty.com/incidents/PABC123"
RUNBOOK = "https://runbooks.example/db-down"


@pytest.fixture
def fake(clock: ManualClock) -> Iterator[FakeSlack]:
    fake = FakeSlack(users=PEOPLE, clock=clock)
    yield fake
    assert fake.violations == []


@pytest.fixture
def served(fake: FakeSlack) -> Iterator[Served]:
    with fake.running() as served:
        yield served


async def oncall_emails(incident: Mapping[str, Any]) -> list[str]:
    assert incident["number"] == 1
    return ["alice@example.com", "pat@example.com"]


def make_handler(served: Served, clock: ManualClock, **options: Any) -> SlackHandler:
    options.setdefault("oncall_emails", oncall_emails)
    options.setdefault("token", BOT_TOKEN)
    return SlackHandler(base_url=f"{served.url}/api/", clock=clock, **options)


@pytest.fixture
async def handler(served: Served, clock: ManualClock) -> AsyncIterator[SlackHandler]:
    opened = make_handler(served, clock)
    try:
        yield opened
    finally:
        await opened.close()


def snapshot(**changes: Any) -> dict[str, Any]:
    return {
        "number": 1,
        "title": "orders-db: database unavailable",
        "status": "triggered",
        "severity": "SEV1",
        "service": "orders-db",
        "team": "team-data",
        "summary": "orders-db primary is down",
        "commander": "",
        "declared_at": "2026-11-25T15:00:00+00:00",
        "is_drill": False,
        "playbook": "database-unavailable",
        "playbook_version": "3f2a9c",
        "runbook": RUNBOOK,
        "labels": {"service": "orders-db"},
    } | changes


def action(
    action_name: str, key: str = KEY, history: tuple[Delivered, ...] = (), **params: Any
) -> Action:
    incident = params.pop("incident", snapshot())
    params["incident"] = incident
    return Action(key, action_name, params, incident["number"], history=history)


def open_channel(history: tuple[Delivered, ...] = (), **params: Any) -> Action:
    params.setdefault("name", "INC-1 Orders DB!!")
    params.setdefault("topic", "SEV1: orders-db in eu-west-1 is unavailable")
    params.setdefault("invite", ["oncall"])
    return action("slack.open_channel", history=history, **params)


def paged() -> Delivered:
    return Delivered("pagerduty.trigger", "1:0:trigger:0", {"incident_url": PD_URL})


def opened(result: ActionResult, key: str = KEY) -> Delivered:
    assert result.ok, result.detail
    return Delivered("slack.open_channel", key, result.data)


def user(fake: FakeSlack, name: str) -> str:
    return next(u.id for u in fake.users.values() if u.name == name)


def summary_of(fake: FakeSlack, result: ActionResult) -> Message:
    channel_id, ts = result.data["channel_id"], result.data["summary_ts"]
    return next(m for m in fake.messages[channel_id] if m.ts == ts)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("INC-1 Orders DB!!", "inc-1-orders-db"),
        ("  --Café__au   lait--  ", "cafe_au-lait"),
        ("数据库", "incident-1"),
        ("x" * 100, "x" * 80),
    ],
)
def test_channel_names_follow_slacks_rules(raw: str, expected: str) -> None:
    assert channel_name(raw, "incident-1") == expected


async def test_open_channel_sets_the_channel_up(fake: FakeSlack, handler: SlackHandler) -> None:
    group = fake.add_usergroup("data-eng", [user(fake, "bob")])
    invite = ["oncall", "@data-eng", user(fake, "carol"), "nobody@example.com", "@ghosts"]
    result = await handler.deliver(open_channel(history=(paged(),), invite=invite))

    assert result.ok, result.detail
    (channel,) = fake.channels.values()
    assert result.data["channel_id"] == channel.id
    assert (result.data["channel"], channel.name) == ("inc-1-orders-db", "inc-1-orders-db")
    assert result.data["channel_url"].endswith(channel.id)
    assert channel.topic == "SEV1: orders-db in eu-west-1 is unavailable"
    assert channel.purpose == f"orders-db primary is down {MARKER}"
    people = [user(fake, name) for name in ("alice", "bob", "carol")]
    assert result.data["invited"] == people
    assert channel.members[1:] == people
    assert result.data["not_found"] == ["pat@example.com", "nobody@example.com", "@ghosts"]
    assert fake.calls_to("usergroups.users.list")[0].params == {"usergroup": group}

    summary = summary_of(fake, result)
    assert fake.pins[channel.id] == [summary.ts]
    header = summary.blocks[0]
    assert header["type"] == "header"
    assert header["text"]["text"] == "SEV1 · #1 orders-db: database unavailable"
    (buttons,) = [b["elements"] for b in summary.blocks if b["type"] == "actions"]
    assert [(b["action_id"], b["text"]["text"], b["value"]) for b in buttons] == [
        ("incident.ack", "Acknowledge", "1"),
        ("incident.escalate", "Escalate", "1"),
        ("incident.resolve", "Resolve", "1"),
    ]
    facts = json.dumps(summary.blocks)
    for fact in ("*Status*\\ntriggered", "*Severity*\\nSEV1", "*Service*\\norders-db"):
        assert fact in facts
    assert "Playbook *database-unavailable*" in facts
    bookmarks = [(b.title, b.link) for b in fake.bookmarks[channel.id]]
    assert bookmarks == [("Runbook", RUNBOOK), ("PagerDuty incident", PD_URL)]
    assert "problems" not in result.data


async def test_delivering_again_with_history_creates_nothing(
    fake: FakeSlack, handler: SlackHandler
) -> None:
    first = await handler.deliver(open_channel())
    again = await handler.deliver(open_channel(history=(opened(first),)))
    assert again.ok
    assert again.data["channel_id"] == first.data["channel_id"]
    assert again.data["summary_ts"] == first.data["summary_ts"]
    assert len(fake.calls_to("conversations.create")) == 1
    assert len(fake.channels) == 1


async def test_a_strangers_channel_with_the_name_gets_a_suffix(
    fake: FakeSlack, handler: SlackHandler
) -> None:
    taken = fake.add_channel("inc-1-orders-db")
    result = await handler.deliver(open_channel())
    assert result.data["channel"] == "inc-1-orders-db-2"
    assert result.data["channel_id"] != taken
    assert fake.channels[taken].purpose == ""
    assert [c.status for c in fake.calls_to("conversations.create")] == [200, 200]
    assert [c.error for c in fake.calls_to("conversations.create")] == ["name_taken", None]


async def test_our_own_channel_from_a_lost_attempt_is_reused(
    fake: FakeSlack, handler: SlackHandler
) -> None:
    # The first delivery worked but its result was never recorded (a crash): no history.
    first = await handler.deliver(open_channel(history=(paged(),)))
    again = await handler.deliver(open_channel(history=(paged(),)))
    assert again.ok, again.detail
    assert again.detail == "found again #inc-1-orders-db"
    assert again.data["channel_id"] == first.data["channel_id"]
    assert again.data["summary_ts"] == first.data["summary_ts"]
    assert len(fake.channels) == 1
    channel_id = first.data["channel_id"]
    assert len(fake.messages[channel_id]) == 1
    assert len(fake.pins[channel_id]) == 1
    assert len(fake.bookmarks[channel_id]) == 2
    assert again.data["invited"] == [user(fake, "alice")]


async def test_a_429_is_retryable_after_retry_after_with_one_request(
    fake: FakeSlack, handler: SlackHandler
) -> None:
    fake.fail_next("conversations.create", status=429, retry_after=7)
    result = await handler.deliver(open_channel())
    assert (result.ok, result.retryable, result.retry_after) == (False, True, 7.0)
    assert "ratelimited" in result.detail
    assert len(fake.calls_to("conversations.create")) == 1
    assert fake.channels == {}


async def test_channel_creation_is_paced_on_the_client(
    fake: FakeSlack, served: Served, clock: ManualClock
) -> None:
    handler = make_handler(served, clock, channel_creations_per_minute=2)
    try:
        for number in (1, 2):
            incident = snapshot(number=number)
            opened_ = await handler.deliver(
                open_channel(name=f"inc-{number}", incident=incident, invite=[])
            )
            assert opened_.ok
            clock.advance(10)
        third = open_channel(name="inc-3", incident=snapshot(number=3), invite=[])
        paced = await handler.deliver(third)
        assert (paced.ok, paced.retryable, paced.retry_after) == (False, True, 40.0)
        assert len(fake.calls_to("conversations.create")) == 2
        clock.advance(40)
        assert (await handler.deliver(third)).ok
    finally:
        await handler.close()
    assert len(fake.channels) == 3


@pytest.mark.parametrize(
    ("fault", "error", "retry_after"),
    [("outage", "service_unavailable", None), ("ratelimited", "ratelimited", 30.0)],
)
async def test_outages_and_ok_false_rate_limits_are_retryable(
    fake: FakeSlack, handler: SlackHandler, fault: str, error: str, retry_after: float | None
) -> None:
    if fault == "outage":
        fake.outage(True)
    else:  # `ok: false` on HTTP 200, without Retry-After
        fake.fail_next("conversations.create", error=fault)
    result = await handler.deliver(open_channel())
    assert (result.ok, result.retryable, result.retry_after) == (False, True, retry_after)
    assert error in result.detail


async def test_a_bad_token_is_not_retryable(
    fake: FakeSlack, served: Served, clock: ManualClock
) -> None:
    handler = make_handler(served, clock, token="xoxb-revoked")
    try:
        result = await handler.deliver(open_channel())
    finally:
        await handler.close()
    assert (result.ok, result.retryable) == (False, False)
    assert result.detail == "slack conversations.create: invalid_auth"
    assert "xoxb" not in repr(handler)


async def test_mentions_and_links_in_an_alert_are_escaped(
    fake: FakeSlack, handler: SlackHandler
) -> None:
    hostile = snapshot(
        title="<!channel> db down <https://evil.example|click> & more",
        summary="<!here> see <https://evil.example|the fix>",
        service="<@U0ALICE>",
    )
    result = await handler.deliver(open_channel(incident=hostile))
    summary = summary_of(fake, result)
    shown = json.dumps([summary.text, summary.blocks])
    for raw in ("<!channel>", "<!here>", "<https://evil", "<@U0ALICE>"):
        assert raw not in shown
    assert "&lt;!channel&gt; db down &lt;https://evil.example|click&gt; &amp; more" in shown
    assert "<!" not in fake.channels[result.data["channel_id"]].purpose


async def test_posts_go_to_the_incident_channel_or_the_one_named(
    fake: FakeSlack, handler: SlackHandler
) -> None:
    broadcast = fake.add_channel("incidents")
    first = await handler.deliver(open_channel())
    history = (opened(first),)
    here = await handler.deliver(action("slack.post", "1:0:trigger:2", history, text="hi *team*"))
    there = await handler.deliver(
        action("slack.post", "1:0:trigger:3", history, channel="#incidents", text="SEV1 #1")
    )
    nowhere = await handler.deliver(action("slack.post", "1:0:trigger:2", text="lost"))
    channel_id = first.data["channel_id"]
    assert (here.data["channel"], here.data["ts"]) == (channel_id, fake.messages[channel_id][-1].ts)
    assert fake.messages[channel_id][-1].text == "hi *team*"
    assert there.data["channel"] == broadcast
    assert [m.text for m in fake.messages[broadcast]] == ["SEV1 #1"]
    assert (nowhere.ok, nowhere.retryable) == (False, False)
    assert nowhere.detail == "the incident has no Slack channel"


async def test_threaded_posts_reply_under_the_incidents_first_message(
    fake: FakeSlack, handler: SlackHandler
) -> None:
    broadcast = fake.add_channel("incidents")
    first = await handler.deliver(open_channel())
    announced = await handler.deliver(
        action("slack.post", "1:0:trigger:3", (opened(first),), channel="#incidents", text="SEV1")
    )
    history = (opened(first), Delivered("slack.post", "1:0:trigger:3", announced.data))
    in_channel = await handler.deliver(
        action("slack.post", "1:1:resolve:1", history, text="fixed", thread=True)
    )
    in_broadcast = await handler.deliver(
        action("slack.post", "1:1:resolve:2", history, channel="#incidents", text="ok", thread=True)
    )
    alone = action(
        "slack.post", "1:1:resolve:3", (opened(first),), channel="#incidents", text="x", thread=True
    )
    unthreaded = await handler.deliver(alone)
    channel_id = first.data["channel_id"]
    replies = {m.text: m.thread_ts for m in fake.messages[channel_id] + fake.messages[broadcast]}
    assert replies["fixed"] == first.data["summary_ts"]
    assert replies["ok"] == announced.data["ts"]
    assert replies["x"] is None  # nothing of this incident there yet: a message of its own
    assert all(r.ok for r in (in_channel, in_broadcast, unthreaded))


async def test_update_summary_edits_the_pinned_message(
    fake: FakeSlack, handler: SlackHandler
) -> None:
    first = await handler.deliver(open_channel())
    later = snapshot(
        status="acknowledged",
        severity="SEV2",
        commander="U0CMDR",
        title="renamed",
        next_escalation="2026-03-01T12:15:00+00:00",
    )
    refresh = action("slack.update_summary", "1:summary:2", (opened(first),), incident=later)
    result = await handler.deliver(refresh)
    assert result.ok, result.detail
    summary = summary_of(fake, first)
    assert summary.edited_ts is not None
    assert summary.blocks[0]["text"]["text"] == "SEV2 · #1 renamed"
    shown = json.dumps(summary.blocks)
    assert "*Status*\\nacknowledged" in shown
    assert "*Commander*\\n<@U0CMDR>" in shown
    assert "*Next escalation*\\n<!date^" in shown  # in each reader's time zone
    assert fake.pins[first.data["channel_id"]] == [summary.ts]
    no_channel = await handler.deliver(action("slack.update_summary", "1:summary:2"))
    assert (no_channel.ok, no_channel.detail) == (True, "no incident channel to update")


async def test_drills_say_so_on_every_message(fake: FakeSlack, handler: SlackHandler) -> None:
    drill = snapshot(is_drill=True)
    first = await handler.deliver(open_channel(incident=drill))
    await handler.deliver(
        action("slack.post", "1:0:trigger:2", (opened(first),), incident=drill, text="go")
    )
    summary, post = fake.messages[first.data["channel_id"]]
    assert summary.blocks[0]["text"]["text"].startswith(":rotating_light: EXERCISE")
    assert summary.text.startswith(":rotating_light: EXERCISE")
    assert post.text.startswith(":rotating_light: EXERCISE")
    assert post.text.endswith("\ngo")


def db_alert(clock: ManualClock) -> bytes:
    labels = {
        "alertname": "PostgresDown",
        "env": "prod",
        "service": "orders-db",
        "cluster": "eu-west-1",
        "severity": "critical",
    }
    payload = {"labels": labels, "annotations": {"summary": "orders-db is down"}}
    return json.dumps(payload | {"starts_at": clock.now().isoformat()}).encode()


async def test_an_outage_delays_slack_actions_without_losing_or_doubling_them(
    fake: FakeSlack, served: Served, store: SqlStore, clock: ManualClock
) -> None:
    playbooks = load_playbooks(REPO / "playbooks", known_actions=ACTION_NAMES)
    pipeline = Pipeline(store, playbooks, clock, refresh_slack_summary=True)
    slack = make_handler(served, clock, oncall_emails=None)
    triggered = ActionResult.success("recorded", incident_url=PD_URL)
    pagerduty = RecordingHandler(
        [n for n in ACTION_NAMES if n.startswith("pagerduty.")], {"pagerduty.trigger": [triggered]}
    )
    dispatcher = Dispatcher(store, route_handlers([slack, pagerduty]), clock)
    try:
        await pipeline.ingest_bytes(db_alert(clock), "test")
        fake.outage(True)
        await dispatcher.drain()
        ack = StatusChange(Status.ACKNOWLEDGED, Actor(ActorKind.SLACK, "U0BOB"), "on it")
        await pipeline.apply(1, ack)
        for _ in range(2):  # Slack stays down across two retries
            clock.advance(30)
            await dispatcher.drain()
        fake.outage(False)
        clock.advance(60)
        await dispatcher.drain()
    finally:
        await slack.close()

    assert pagerduty.names() == ["pagerduty.trigger", "pagerduty.acknowledge"]
    outbox = await store.list_actions(1)
    items = {item.action.name: item for item in outbox}
    assert len(outbox) == len(items)
    assert set(items) == {
        "pagerduty.trigger",
        "slack.open_channel",
        "slack.post",
        "pagerduty.acknowledge",
        "slack.update_summary",
    }
    assert {item.status for item in items.values()} == {OutboxStatus.DELIVERED}
    # Three attempts met the outage; the posts behind the channel waited their turn.
    attempts = {name: item.attempts for name, item in items.items() if name.startswith("slack.")}
    assert attempts == {"slack.open_channel": 4, "slack.post": 1, "slack.update_summary": 1}
    done = [c.method for c in fake.calls if c.status == 200 and c.error is None]
    writes = [m for m in done if m in ("conversations.create", "chat.postMessage", "chat.update")]
    assert writes == ["conversations.create", "chat.postMessage", "chat.postMessage", "chat.update"]
    (channel,) = fake.channels.values()
    assert items["slack.open_channel"].result is not None
    assert items["slack.open_channel"].result["channel_id"] == channel.id
    summary, template = fake.messages[channel.id]
    assert fake.pins[channel.id] == [summary.ts]
    assert "*Status*\\nacknowledged" in json.dumps(summary.blocks)
    assert template.text.startswith("*SEV1 · Incident #1")
    assert [b.link for b in fake.bookmarks[channel.id]] == [RUNBOOK, PD_URL]
