"""Socket Mode against the fake Slack: envelopes pushed over the WebSocket reach the real
responder and pipeline, and each is acked (a command with its answer)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from fakes.server import Served
from fakes.slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from fakes.slack_requests import (
    block_action_payload,
    event_callback_payload,
    slash_command_payload,
)

from orchestrator.clock import ManualClock
from orchestrator.incident.model import ActorKind, Status
from orchestrator.ingest.slack import SlackResponder
from orchestrator.ingest.slack_socket import SlackSocketMode
from orchestrator.pipeline import Pipeline
from orchestrator.store.sql import SqlStore
from orchestrator.timeline import Kind


@pytest.fixture
def fake(clock: ManualClock) -> FakeSlack:
    return FakeSlack(users=[("alice", "alice@example.com")], clock=clock)


@pytest.fixture
def served(fake: FakeSlack) -> Iterator[Served]:
    with fake.running() as served:
        yield served


@pytest.fixture
async def incident(pipeline: Pipeline, clock: ManualClock) -> int:
    labels = {
        "alertname": "PostgresDown",
        "env": "prod",
        "service": "orders-db",
        "cluster": "eu-west-1",
        "severity": "critical",
    }
    alert = {"labels": labels, "starts_at": clock.now().isoformat()}
    report = await pipeline.ingest_bytes(json.dumps(alert).encode(), "test")
    number = report.outcomes[0].incident_number
    assert number is not None
    return number


@pytest.fixture
async def socket_mode(
    fake: FakeSlack, served: Served, pipeline: Pipeline, store: SqlStore
) -> AsyncIterator[SlackSocketMode]:
    responder = SlackResponder(pipeline, store)
    transport = SlackSocketMode(
        responder, app_token=APP_TOKEN, bot_token=BOT_TOKEN, base_url=f"{served.url}/api/"
    )
    await transport.start()
    try:
        for _ in range(500):  # the fake registers the socket just after its hello
            if fake.socket_mode.connections:
                break
            await asyncio.sleep(0.01)
        yield transport
    finally:
        await transport.stop()


async def test_a_slash_command_is_acked_with_the_responders_answer(
    fake: FakeSlack, socket_mode: SlackSocketMode, store: SqlStore, incident: int
) -> None:
    command = slash_command_payload("/incident", f"ack #{incident}", "U0ALICE", "C0RANDOM")
    envelope = fake.push_envelope("slash_commands", command)
    ack = await fake.wait_ack(envelope, timeout=5)
    assert ack == {
        "envelope_id": envelope,
        "payload": {"response_type": "ephemeral", "text": f"Done: ack on #{incident}."},
    }
    acknowledged = await store.get_incident(incident)
    assert acknowledged is not None
    assert acknowledged.status is Status.ACKNOWLEDGED
    entry = next(e for e in await store.timeline(incident) if e.kind is Kind.INCIDENT_ACKNOWLEDGED)
    assert (entry.actor.kind, entry.actor.id) == (ActorKind.SLACK, "U0ALICE")
    assert fake.calls_to("apps.connections.open")[0].token == APP_TOKEN


async def test_buttons_and_events_are_handled_then_acked(
    fake: FakeSlack, socket_mode: SlackSocketMode, store: SqlStore, incident: int
) -> None:
    response_url = fake.new_response_url()
    click = block_action_payload(
        "incident.resolve",
        str(incident),
        "U0ALICE",
        "C0RANDOM",
        "1.000100",
        response_url=response_url,
    )
    clicked = fake.push_envelope("interactive", click)
    assert await fake.wait_ack(clicked, timeout=5) == {"envelope_id": clicked}
    resolved = await store.get_incident(incident)
    assert resolved is not None
    assert resolved.status is Status.RESOLVED
    assert fake.responses_at(response_url) == [
        {"response_type": "ephemeral", "text": f"Done: resolve on #{incident}."}
    ]
    # An event outside any incident channel is acked and changes nothing.
    pin = {"type": "pin_added", "user": "U0ALICE", "channel_id": "C0RANDOM", "event_ts": "1.0"}
    event = fake.push_envelope("events_api", event_callback_payload(pin))
    assert await fake.wait_ack(event, timeout=5) == {"envelope_id": event}
    assert not [e for e in await store.timeline(incident) if e.kind is Kind.NOTE]
