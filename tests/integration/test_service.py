"""The service on its embedded default: HTTP intake into the pipeline, dispatcher, clean stop."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from samples import db_alert, free_port

from handlers.recording import RecordingHandler
from orchestrator.app import App, build_app
from orchestrator.clock import ManualClock
from orchestrator.incident.events import StatusChange
from orchestrator.incident.model import Actor, ActorKind, Status
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.report.timestamps import canonical_timestamps
from orchestrator.service import Service
from orchestrator.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def local_settings(tmp_path: Path, **changes: Any) -> Settings:
    """The embedded default on a file under tmp_path, the shipped playbooks, no HTTP listener
    unless `changes` give one."""
    base: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'svc.db'}",
        "playbooks_dir": REPO / "playbooks",
        "http_port": 0,
    }
    return Settings(**(base | changes))


@asynccontextmanager
async def serving(app: App) -> AsyncIterator[None]:
    """The service running for the block, then stopped; a failure of its run is raised."""
    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(Service(app).run(stop, on_ready=ready.set))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)


async def test_webhook_to_delivered_actions_then_a_clean_stop(tmp_path: Path) -> None:
    port = free_port()
    settings = local_settings(tmp_path, http_port=port, http_token="s3cret-token")
    recorder = RecordingHandler(ACTION_NAMES)
    app = await build_app(settings, handlers=[recorder])
    service = Service(app)
    stop = asyncio.Event()
    ready = asyncio.Event()
    running = asyncio.create_task(service.run(stop, on_ready=ready.set))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        body = (REPO / "examples" / "alertmanager-stream.jsonl").read_bytes().splitlines()[3]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(50):  # uvicorn binds just after the service reports ready
                try:
                    health = await client.get("/healthz")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.1)
            assert health.status_code == 200
            unauthorized = await client.post(
                "/api/v1/alerts", content=body, headers={"content-type": "application/json"}
            )
            assert unauthorized.status_code == 401
            accepted = await client.post(
                "/api/v1/alerts/alertmanager",
                content=body,
                headers={
                    "content-type": "application/json",
                    "authorization": "Bearer s3cret-token",
                },
            )
            assert accepted.status_code == 202, accepted.text
            ready_now = await client.get("/readyz")
            assert ready_now.json()["checks"] == {
                "started": True,
                "store": True,
                "timers": True,
                "outbox": True,
            }
        async with asyncio.timeout(10):
            while not recorder.delivered:  # noqa: ASYNC110 - the dispatcher runs in the service
                await asyncio.sleep(0.05)
        assert "pagerduty.trigger" in recorder.names()
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
        await app.close()
    assert running.exception() is None


def test_kafka_topics_setting() -> None:
    settings = Settings(kafka_topics="alerts, am=alertmanager ,ce=cloudevents")
    assert {
        name: (fmt.value if fmt else None) for name, fmt in settings.kafka_topic_formats().items()
    } == {
        "alerts": None,
        "am": "alertmanager",
        "ce": "cloudevents",
    }
    with pytest.raises(ValueError, match="unknown format"):
        Settings(kafka_topics="x=bogus").kafka_topic_formats()
    with pytest.raises(ValueError, match="is empty"):
        Settings(http_token="  ")


def test_database_password_is_masked() -> None:
    settings = Settings(database_url="postgresql+asyncpg://app:hunter2@db:5432/inc")
    assert settings.safe_database_url() == "postgresql+asyncpg://app:***@db:5432/inc"
    assert "hunter2" not in repr(settings.http_token)


async def test_the_service_signs_checkpoints_when_given_a_key(tmp_path: Path) -> None:
    settings = local_settings(tmp_path, evidence_signing_key="5a" * 32)
    app = await build_app(settings, handlers=[RecordingHandler(ACTION_NAMES)])
    try:
        async with serving(app), asyncio.timeout(10):
            while not await app.store.list_checkpoints():  # noqa: ASYNC110 - the service signs
                await asyncio.sleep(0.05)
        (first,) = await app.store.list_checkpoints()
        assert first.number == 1
    finally:
        await app.close()


async def test_a_malformed_signing_key_stops_the_service_at_start(tmp_path: Path) -> None:
    settings = local_settings(tmp_path, evidence_signing_key="not-a-key")
    app = await build_app(settings, handlers=[RecordingHandler(ACTION_NAMES)])
    try:
        with pytest.raises(ValueError, match="neither PEM nor hex"):
            Service(app)
    finally:
        await app.close()


async def test_overdue_postmortems_are_reminded_once_a_day(tmp_path: Path) -> None:
    clock = ManualClock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))  # a Monday
    settings = local_settings(tmp_path)
    app = await build_app(settings, clock=clock, handlers=[RecordingHandler(ACTION_NAMES)])
    try:
        service = Service(app)
        await app.pipeline.ingest_bytes(db_alert("orders-db", starts_at=clock.now()), "test")
        await app.pipeline.apply(1, StatusChange(Status.RESOLVED, Actor(ActorKind.CLI, "ana")))
        assert await service.remind_postmortems(days=5) == 0  # just resolved
        clock.advance(dt.timedelta(days=8))  # six business days later
        assert await service.remind_postmortems(days=5) == 1
        assert await service.remind_postmortems(days=5) == 0  # once a day
        (nudge,) = [i.action for i in await app.store.list_actions(1) if "reminder" in i.action.key]
        assert nudge.name == "slack.post"
        assert "The postmortem of #1 is overdue" in nudge.params["text"]
        clock.advance(dt.timedelta(days=1))
        assert await service.remind_postmortems(days=5) == 1  # the next day, again
    finally:
        await app.close()


async def test_the_service_keeps_timestamp_folds_current(tmp_path: Path) -> None:
    app = await build_app(local_settings(tmp_path), handlers=[RecordingHandler(ACTION_NAMES)])
    starts_at = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    try:
        await app.pipeline.ingest_bytes(db_alert(starts_at=starts_at), "test")
        async with serving(app), asyncio.timeout(10):
            while not await app.store.folded_timestamps(None, None):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        ((stamps, _, _),) = await app.store.folded_timestamps(None, None)
        assert (stamps.number, stamps.impact_started_at) == (1, starts_at)
        # The dispatcher's deliveries came after that round; the next one takes them in.
        await app.store.refresh_folds()
        ((stamps, _, _),) = await app.store.folded_timestamps(None, None)
        assert stamps == canonical_timestamps(await app.store.timeline(1))
    finally:
        await app.close()


async def test_readiness_fails_while_actions_wait_too_long(tmp_path: Path) -> None:
    clock = ManualClock(dt.datetime(2026, 3, 2, 18, 30, tzinfo=dt.UTC))
    recorder = RecordingHandler(ACTION_NAMES)
    settings = local_settings(tmp_path, outbox_backlog_threshold_seconds=600)
    app = await build_app(settings, handlers=[recorder], clock=clock)
    try:
        service = Service(app)
        await app.pipeline.ingest_bytes(db_alert(starts_at=clock.now()), "test")
        assert (await service.readiness())["outbox"] is True  # just queued
        clock.advance(dt.timedelta(minutes=11))  # nobody delivered them: the dispatcher is down
        assert (await service.readiness())["outbox"] is False
        await app.dispatcher.drain()
        assert (await service.readiness())["outbox"] is True
    finally:
        await app.close()
