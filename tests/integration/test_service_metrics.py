"""The service's own metrics on /metrics, as Prometheus scrapes them: alerts in by disposition,
dead letters, incidents opened, deliveries by outcome, the outbox's backlog, timer lateness,
and the response histograms of incidents as they end."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from samples import db_alert, free_port

from handlers.recording import RecordingHandler
from orchestrator.actions import ActionResult
from orchestrator.app import build_app
from orchestrator.clock import ManualClock
from orchestrator.incident.events import StatusChange
from orchestrator.incident.model import Actor, ActorKind, Status
from orchestrator.instruments import Instruments
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.service import Service
from orchestrator.settings import Settings
from orchestrator.telemetry import service_telemetry

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 3, 2, 18, 30, tzinfo=dt.UTC)
ANA = Actor(ActorKind.SLACK, "UANA", "ana")


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset(
                (k, v) for k, v in sample.labels.items() if not k.startswith("otel_scope")
            )
            found[(sample.name, labels)] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


async def test_metrics_are_scraped_from_the_service(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'metrics.db'}",
        playbooks_dir=REPO / "playbooks",
        http_port=port,
    )
    telemetry = service_telemetry()
    # Slack is down for posts: they are retried, so the outbox has a backlog to measure.
    down = ActionResult.failure("503", retryable=True, retry_after=3600)
    handler = RecordingHandler(ACTION_NAMES, {"slack.post": [down] * 5})
    app = await build_app(
        settings, handlers=[handler], instruments=Instruments.of(telemetry.meter())
    )
    service = Service(app, telemetry)
    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(service.run(stop, on_ready=ready.set))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            headers = {"content-type": "application/json"}
            alert = db_alert(starts_at=T0)
            sent = await http.post("/api/v1/alerts", content=alert, headers=headers)
            assert sent.status_code == 202
            bad = await http.post("/api/v1/alerts", content=b"{not json", headers=headers)
            assert bad.status_code == 400  # dead-lettered, with its raw bytes
            async with asyncio.timeout(10):
                while len(handler.attempts) < 3:  # noqa: ASYNC110 - the dispatcher runs apart
                    await asyncio.sleep(0.05)
            await service.measure_outbox()
            scraped = await http.get("/metrics")
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
        await app.close()
        telemetry.shutdown()
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    found = samples(scraped.text)
    opened = value(found, "orchestrator_alerts_total", source="native", disposition="opened")
    assert opened == 1
    assert value(found, "orchestrator_dead_letters_total", source="unknown") == 1
    assert (
        value(
            found,
            "orchestrator_incidents_opened_total",
            severity="SEV1",
            playbook="database-unavailable",
        )
        == 1
    )
    delivered = value(
        found,
        "orchestrator_actions_deliveries_total",
        handler="recording",
        action="pagerduty.trigger",
        outcome="delivered",
    )
    assert delivered == 1
    retrying = value(
        found,
        "orchestrator_actions_deliveries_total",
        handler="recording",
        action="slack.post",
        outcome="retrying",
    )
    assert retrying == 1
    assert value(found, "orchestrator_outbox_depth") >= 1
    assert value(found, "orchestrator_outbox_oldest_age_seconds") >= 0
    assert value(found, "orchestrator_timers_overdue") == 0


async def test_incidents_over_are_in_the_response_histograms(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'histograms.db'}",
        playbooks_dir=REPO / "playbooks",
    )
    telemetry = service_telemetry()
    app = await build_app(
        settings,
        handlers=[RecordingHandler(ACTION_NAMES)],
        clock=clock,
        instruments=Instruments.of(telemetry.meter()),
    )
    try:
        service = Service(app, telemetry)
        await app.pipeline.ingest_bytes(db_alert(starts_at=T0), "test")
        await app.pipeline.ingest_bytes(db_alert("billing-db", starts_at=T0), "test")
        clock.advance(dt.timedelta(minutes=4))
        await app.pipeline.apply(1, StatusChange(Status.ACKNOWLEDGED, ANA))
        clock.advance(dt.timedelta(minutes=30))
        await app.pipeline.apply(1, StatusChange(Status.RESOLVED, ANA))
        assert await service.fold_and_observe() == 1  # #2 is still open
        assert await service.fold_and_observe() == 0  # recorded once
        found = samples(generate_latest(telemetry.registry).decode())
    finally:
        await app.close()
        telemetry.shutdown()
    labels = {
        "severity": "SEV1",
        "service": "orders-db",
        "team": "team-data",
        "playbook": "database-unavailable",
    }
    tta = "orchestrator_incident_tta_seconds"
    assert value(found, f"{tta}_count", **labels) == 1
    assert value(found, f"{tta}_sum", **labels) == 240
    # Buckets of minutes, not the SDK's default milliseconds.
    assert value(found, f"{tta}_bucket", le="120.0", **labels) == 0
    assert value(found, f"{tta}_bucket", le="300.0", **labels) == 1
    assert value(found, "orchestrator_incident_ttr_seconds_sum", **labels) == 34 * 60
