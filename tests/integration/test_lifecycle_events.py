"""Lifecycle events: derived from state changes, written with the decision, published in order."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from orchestrator.app import build_app
from orchestrator.clock import ManualClock
from orchestrator.incident.engine import TransitionError
from orchestrator.incident.events import StatusChange
from orchestrator.incident.model import Actor, ActorKind, Status
from orchestrator.lifecycle import PUBLISH_EVENT
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.loader import load_playbooks
from orchestrator.settings import Settings
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[2]
STREAM = [
    line
    for line in (REPO / "examples" / "alertmanager-stream.jsonl").read_bytes().splitlines()
    if line
]
ALICE = Actor(ActorKind.CLI, "alice", "alice")


async def test_each_state_change_is_an_event_in_the_outbox(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}")
    await store.open()
    try:
        pipeline = Pipeline(
            store, load_playbooks(REPO / "playbooks"), ManualClock(), publish_events=True
        )
        for index, line in enumerate(STREAM):
            await pipeline.ingest_bytes(line, f"stream:{index}")
        before = len(await store.list_actions(6))
        await pipeline.apply(6, StatusChange(Status.ACKNOWLEDGED, ALICE))
        with pytest.raises(TransitionError):
            await pipeline.apply(6, StatusChange(Status.ACKNOWLEDGED, ALICE))
        events = [
            item.action for item in await store.list_actions(6) if item.action.name == PUBLISH_EVENT
        ]
        assert [e.params["type"] for e in events] == ["incident.triggered", "incident.acknowledged"]
        assert events[1].params["actor"] == {"kind": "cli", "id": "alice", "name": "alice"}
        assert events[1].params["status"] == "acknowledged"
        sequences = [e.params["sequence"] for e in events]
        assert sequences == sorted(sequences)
        # The rejected second ack changed nothing, so it published nothing.
        # The event and security-incident's two on_acknowledge steps, once.
        assert len(await store.list_actions(6)) == before + 3
        # An incident that opened, escalated in severity, resolved and reopened tells it all.
        db_events = [
            item.action.params["type"]
            for item in await store.list_actions(3)
            if item.action.name == PUBLISH_EVENT
        ]
        assert db_events == [
            "incident.triggered",
            "incident.resolved",
            "incident.reopened",
            "incident.resolved",
        ]
    finally:
        await store.close()


async def test_events_reach_the_topic_keyed_and_in_order(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    topic = f"incidents.events.{uuid.uuid4().hex[:8]}"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        playbooks_dir=REPO / "playbooks",
        kafka_bootstrap=kafka_bootstrap,
        kafka_events_topic=topic,
    )
    app = await build_app(settings, clock=ManualClock())
    try:
        for index, line in enumerate(STREAM[:12]):
            await app.pipeline.ingest_bytes(line, f"stream:{index}")
        await app.pipeline.apply(1, StatusChange(Status.ACKNOWLEDGED, ALICE))
        await app.pipeline.apply(1, StatusChange(Status.RESOLVED, ALICE, "fixed"))
        await app.dispatcher.drain()
        published = [
            item for item in await app.store.list_actions() if item.action.name == PUBLISH_EVENT
        ]
        assert published
        assert all(item.status.value == "delivered" for item in published)
    finally:
        await app.close()

    received = await consume_all(kafka_bootstrap, topic, len(published))
    by_incident: dict[int, list[dict[str, Any]]] = {}
    for key, value in received:
        event = json.loads(value)
        assert key == str(event["incident"]).encode()
        by_incident.setdefault(event["incident"], []).append(event)
    assert [e["type"] for e in by_incident[1]] == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.resolved",
    ]
    for events in by_incident.values():
        sequences = [e["sequence"] for e in events]
        assert sequences == sorted(sequences)


async def consume_all(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    received: list[tuple[bytes, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(received) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    received += [(r.key, r.value) for r in records]
    finally:
        await consumer.stop()
    return received
