"""Responding from Slack: signed commands, buttons and marked messages reach the pipeline;
forged, stale and replayed requests do not."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from samples import db_alert as sample_alert
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette

from handlers.recording import RecordingHandler
from orchestrator.actions import ActionResult
from orchestrator.app import route_handlers
from orchestrator.clock import ManualClock
from orchestrator.dispatcher import Dispatcher
from orchestrator.drill.record import DrillRun, Mode, RunState
from orchestrator.incident.engine import Decision
from orchestrator.incident.events import Event
from orchestrator.incident.model import ActorKind, Status
from orchestrator.ingest.slack import Authorization, RequestGuard, SlackResponder, slack_routes
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.store.sql import SqlStore
from orchestrator.timeline import Kind

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0INCIDENT1"


def db_alert(service: str = "orders-db") -> bytes:
    return sample_alert(service, starts_at=T0)


class Replies:
    """What the responder posted back to Slack's response_url."""

    def __init__(self) -> None:
        self.posted: list[dict[str, object]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.posted.append(json.loads(request.content))
        return httpx.Response(200, text="ok")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[dict[str, object]]:
    clock = ManualClock(T0)
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'slack.db'}")
    await store.open()
    playbooks = load_playbooks(REPO / "playbooks", known_actions=ACTION_NAMES)
    pipeline = Pipeline(store, playbooks, clock)
    await pipeline.ingest_bytes(db_alert(), "test")
    # The incident's channel was opened: its id is what the handler returned.
    opened = ActionResult.success("created", channel_id=CHANNEL, channel="inc-1-orders-db")
    handler = RecordingHandler(ACTION_NAMES, {"slack.open_channel": [opened]})
    await Dispatcher(store, route_handlers([handler]), clock).drain()
    replies = Replies()
    http = httpx.AsyncClient(transport=httpx.MockTransport(replies.handle))
    messages = {("C0INCIDENT1", "1700000000.000100"): "replica lag is the cause"}

    async def fetch(channel: str, ts: str) -> str | None:
        return messages.get((channel, ts))

    responder = SlackResponder(
        pipeline,
        store,
        authorization=Authorization(responders=frozenset({"UCOMMANDER"})),
        fetch_message=fetch,
        http=http,
    )
    app = Starlette(routes=slack_routes(responder, RequestGuard(SECRET, clock)))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://slack")
    try:
        yield {
            "clock": clock,
            "store": store,
            "client": client,
            "replies": replies,
            "responder": responder,
        }
    finally:
        await client.aclose()
        await http.aclose()
        await store.close()


def signed(
    body: bytes, clock: ManualClock, *, secret: str = SECRET, age: int = 0
) -> dict[str, str]:
    timestamp = str(int(clock.now().timestamp()) - age)
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def command(text: str, user: str = "UALICE", channel: str = CHANNEL) -> bytes:
    form = {
        "command": "/incident",
        "text": text,
        "user_id": user,
        "user_name": user.lower(),
        "channel_id": channel,
        "response_url": "https://hooks.slack.test/commands/1",
    }
    return urlencode(form).encode()


async def post(world: dict[str, object], path: str, body: bytes, **kw: object) -> httpx.Response:
    client = world["client"]
    clock = world["clock"]
    assert isinstance(client, httpx.AsyncClient)
    assert isinstance(clock, ManualClock)
    headers = signed(body, clock, **kw)  # type: ignore[arg-type]
    return await client.post(path, content=body, headers=headers)


def store_of(world: dict[str, object]) -> SqlStore:
    store = world["store"]
    assert isinstance(store, SqlStore)
    return store


async def test_ack_typed_in_the_incident_channel(world: dict[str, object]) -> None:
    response = await post(world, "/slack/commands", command("ack"))
    assert response.status_code == 200
    assert response.json() == {"response_type": "ephemeral", "text": "Done: ack on #1."}
    incident = await store_of(world).get_incident(1)
    assert incident is not None
    assert incident.status is Status.ACKNOWLEDGED
    entry = next(
        e for e in await store_of(world).timeline(1) if e.kind is Kind.INCIDENT_ACKNOWLEDGED
    )
    assert (entry.actor.kind, entry.actor.id, entry.actor.name) == (
        ActorKind.SLACK,
        "UALICE",
        "ualice",
    )


async def test_commands_outside_an_incident_channel_need_a_number(
    world: dict[str, object],
) -> None:
    response = await post(world, "/slack/commands", command("ack", channel="CRANDOM"))
    assert "not an incident channel" in response.json()["text"]
    response = await post(
        world, "/slack/commands", command("note #1 checked the replicas", channel="CRANDOM")
    )
    assert response.json()["text"] == "Done: note on #1."
    notes = [e for e in await store_of(world).timeline(1) if e.kind is Kind.NOTE]
    assert notes[-1].data == {"text": "checked the replicas"}


async def test_status_severity_commander_and_mistakes(world: dict[str, object]) -> None:
    answer = await post(world, "/slack/commands", command("severity SEV2", user="UCOMMANDER"))
    assert answer.json()["text"] == "Done: severity on #1."
    answer = await post(
        world, "/slack/commands", command("commander <@UANA|ana>", user="UCOMMANDER")
    )
    assert answer.json()["text"] == "Done: commander on #1."
    status = (await post(world, "/slack/commands", command("status"))).json()["text"]
    assert status.startswith("#1 ")
    assert "SEV2" in status
    assert "<@UANA>" in status
    wrong = (await post(world, "/slack/commands", command("severity SEV9"))).json()["text"]
    assert "'SEV9' is not one of" in wrong
    missing = (await post(world, "/slack/commands", command("ack #99"))).json()["text"]
    assert missing == "no incident #99"


async def test_restricted_verbs_need_a_responder(world: dict[str, object]) -> None:
    refused = await post(world, "/slack/commands", command("resolve", user="UINTERN"))
    assert refused.json()["text"] == "only the configured responders may resolve incidents"
    incident = await store_of(world).get_incident(1)
    assert incident is not None
    assert incident.status is Status.TRIGGERED
    allowed = await post(world, "/slack/commands", command("resolve", user="UCOMMANDER"))
    assert allowed.json()["text"] == "Done: resolve on #1."


async def test_buttons_act_and_report_refusals(world: dict[str, object]) -> None:
    clicks = iter(range(100))

    def click(action_id: str, user: str) -> bytes:
        payload = {
            "action_ts": f"1700000000.{next(clicks):06}",
            "type": "block_actions",
            "user": {"id": user, "username": user.lower()},
            "response_url": "https://hooks.slack.test/actions/1",
            "actions": [{"action_id": action_id, "value": "1"}],
        }
        return urlencode({"payload": json.dumps(payload)}).encode()

    assert (
        await post(world, "/slack/interactions", click("incident.ack", "UBOB"))
    ).status_code == 200
    incident = await store_of(world).get_incident(1)
    assert incident is not None
    assert incident.status is Status.ACKNOWLEDGED
    await post(world, "/slack/interactions", click("incident.ack", "UBOB"))  # clicked twice
    replies = world["replies"]
    assert isinstance(replies, Replies)
    assert "cannot acknowledge incident #1: it is acknowledged" in str(replies.posted[-1]["text"])
    await post(world, "/slack/interactions", click("incident.resolve", "UBOB"))
    assert replies.posted[-1]["text"] == "only the configured responders may resolve incidents"


async def test_forged_stale_and_replayed_requests_are_refused(world: dict[str, object]) -> None:
    body = command("resolve", user="UCOMMANDER")
    forged = await post(world, "/slack/commands", body, secret="not-the-secret")
    assert forged.status_code == 401
    assert forged.json() == {"error": "signature does not match the body"}
    stale = await post(world, "/slack/commands", body, age=301)
    assert stale.status_code == 401
    assert "more than 300s" in stale.json()["error"]
    client = world["client"]
    assert isinstance(client, httpx.AsyncClient)
    unsigned = await client.post("/slack/commands", content=body)
    assert unsigned.status_code == 401
    incident = await store_of(world).get_incident(1)
    assert incident is not None
    assert incident.status is Status.TRIGGERED  # nothing reached the pipeline

    clock = world["clock"]
    assert isinstance(clock, ManualClock)
    headers = signed(command("note replay me"), clock)
    first = await client.post("/slack/commands", content=command("note replay me"), headers=headers)
    again = await client.post("/slack/commands", content=command("note replay me"), headers=headers)
    assert first.status_code == 200
    assert again.status_code == 401
    assert "replayed" in again.json()["error"]
    notes = [e for e in await store_of(world).timeline(1) if e.kind is Kind.NOTE]
    assert [n.data["text"] for n in notes] == ["replay me"]

    tampered = command("note replay me").replace(b"replay", b"tamper")
    assert (
        await client.post("/slack/commands", content=tampered, headers=headers)
    ).status_code == 401


async def test_marked_messages_become_notes(world: dict[str, object]) -> None:
    def event(event_id: str, inner: dict[str, object]) -> bytes:
        return json.dumps({"type": "event_callback", "event_id": event_id, "event": inner}).encode()

    reaction = {
        "type": "reaction_added",
        "user": "UBOB",
        "reaction": "pushpin",
        "item": {"type": "message", "channel": CHANNEL, "ts": "1700000000.000100"},
    }
    pin = {
        "type": "pin_added",
        "user": "UANA",
        "channel_id": CHANNEL,
        "item": {"type": "message", "channel": CHANNEL, "message": {"text": "failover done"}},
    }
    other_emoji = {**reaction, "reaction": "eyes"}
    # Slack retries an event it thinks we missed: a new signature, the same event id.
    deliveries = [("E1", reaction, 0), ("E1", reaction, 1), ("E2", pin, 0), ("E3", other_emoji, 0)]
    for event_id, inner, age in deliveries:
        response = await post(world, "/slack/events", event(event_id, inner), age=age)
        assert response.status_code == 200
    notes = [e for e in await store_of(world).timeline(1) if e.kind is Kind.NOTE]
    assert [(n.actor.id, n.data["text"]) for n in notes] == [
        ("UBOB", "replica lag is the cause"),
        ("UANA", "failover done"),
    ]
    challenge = await post(
        world,
        "/slack/events",
        json.dumps({"type": "url_verification", "challenge": "c-1"}).encode(),
    )
    assert challenge.json() == {"challenge": "c-1"}


async def test_declare_opens_an_incident(world: dict[str, object]) -> None:
    answer = await post(
        world, "/slack/commands", command("declare SEV2 checkout errors", channel="CGENERAL")
    )
    assert answer.json()["text"] == "Declared #2: checkout errors"
    incident = await store_of(world).get_incident(2)
    assert incident is not None
    assert (incident.title, incident.severity.value, incident.playbook) == (
        "checkout errors",
        "SEV2",
        "declared-incident",
    )


async def test_a_slow_store_still_answers_slack_in_time(world: dict[str, object]) -> None:
    """Slack waits 3 s for an answer: a command that takes longer answers "working on it"
    at once, finishes anyway, and sends its real answer through the response_url."""
    responder = world["responder"]
    assert isinstance(responder, SlackResponder)
    responder.answer_within = 0.05
    released = asyncio.Event()
    apply = responder.pipeline.apply

    async def slow_apply(number: int, event: Event) -> Decision:
        await released.wait()
        return await apply(number, event)

    responder.pipeline.apply = slow_apply  # type: ignore[method-assign]
    answer = await post(world, "/slack/commands", command("ack"))
    assert answer.json() == {
        "response_type": "ephemeral",
        "text": "Working on it; the answer follows.",
    }
    released.set()
    replies = world["replies"]
    assert isinstance(replies, Replies)
    async with asyncio.timeout(5):
        while not replies.posted:  # noqa: ASYNC110 - the late answer arrives over HTTP
            await asyncio.sleep(0.01)
    assert replies.posted == [{"response_type": "ephemeral", "text": "Done: ack on #1."}]
    incident = await store_of(world).get_incident(1)
    assert incident is not None
    assert incident.status is Status.ACKNOWLEDGED


async def test_postmortem_status_and_action_items_from_slack(world: dict[str, object]) -> None:
    empty = (await post(world, "/slack/commands", command("postmortem"))).json()["text"]
    assert empty.startswith("Postmortem of #1: not started; 0 action item(s), 0 open.")
    added = await post(
        world, "/slack/commands", command("action add a replica <@UANA|ana> due:2026-04-01")
    )
    assert added.json()["text"] == ("Action item 1 on #1: add a replica (<@UANA>, due 2026-04-01)")
    mine = await post(world, "/slack/commands", command("action #1 alert on lag", user="UBOB"))
    assert "(<@UBOB>)" in mine.json()["text"]  # no owner named: whoever asked
    # (Another body than the first: the same signed request twice is refused as a replay.)
    status = (await post(world, "/slack/commands", command("postmortem #1"))).json()["text"]
    assert "2 action item(s), 2 open" in status
    items = await store_of(world).list_action_items(1)
    assert [(i.title, i.owner) for i in items] == [
        ("add a replica", "UANA"),
        ("alert on lag", "UBOB"),
    ]
    entries = [e for e in await store_of(world).timeline(1) if e.kind.value == "action_item.added"]
    assert [e.actor.id for e in entries] == ["UALICE", "UBOB"]


async def test_a_drill_is_paused_resumed_and_ended_from_its_channel(
    world: dict[str, object],
) -> None:
    store = store_of(world)
    clock = world["clock"]
    assert isinstance(clock, ManualClock)
    run = await store.start_drill_run(
        DrillRun(
            "",
            "db-failover",
            "DB failover",
            "0" * 64,
            "id: db-failover\n",
            Mode.LIVE,
            RunState.RUNNING,
            T0,
            T0,
        )
    )
    playbooks = load_playbooks(REPO / "playbooks", known_actions=ACTION_NAMES)
    drill = Pipeline(store, playbooks, clock, drill_id=run.id)
    (outcome,) = (await drill.ingest_bytes(db_alert("billing-db"), "drill")).outcomes
    number = outcome.incident_number

    async def say(text: str, user: str = "UCOMMANDER") -> str:
        clock.advance(1)  # a request repeated at the same second would be refused as a replay
        answer = await post(world, "/slack/commands", command(text, user=user))
        return str(answer.json()["text"])

    assert await say(f"pause #{number}", user="UALICE") == (
        "only the configured responders may pause incidents"
    )
    assert await say(f"pause #{number}") == f"Drill {run.id}: paused."
    assert (await store.get_drill_run(run.id)).state is RunState.PAUSED  # type: ignore[union-attr]
    assert await say(f"resume #{number}") == f"Drill {run.id}: running."
    assert await say(f"endex #{number}") == f"Drill {run.id}: ended."
    assert await say(f"pause #{number}") == f"drill {run.id} has already ended"
    assert await say("pause #1") == (
        "#1 is a real incident, not a drill: it has no exercise to control"
    )
