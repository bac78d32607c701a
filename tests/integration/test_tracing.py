"""One alert's journey is one trace: the batch that recorded it, each delivery of what it
decided, the escalation timer that fired later and what that paged, and a responder's button
afterwards, all in the trace the alert came in with."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import httpx
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from samples import db_alert, free_port

from handlers.recording import RecordingHandler
from orchestrator.app import build_app
from orchestrator.clock import ManualClock
from orchestrator.incident.events import StatusChange
from orchestrator.incident.model import Actor, ActorKind, Status
from orchestrator.ingest.alert import SourceFormat
from orchestrator.instruments import (
    SPAN_CHANGE,
    SPAN_DECIDE,
    SPAN_DELIVER,
    SPAN_INGEST,
    SPAN_MATCH,
    SPAN_NORMALIZE,
    SPAN_STORE,
    SPAN_TIMER,
    Instruments,
)
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.scheduler import TimerService
from orchestrator.service import Service
from orchestrator.settings import Settings

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 3, 2, 18, 30, tzinfo=dt.UTC)


def children(spans: list[ReadableSpan], of: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == of.context.span_id]


async def test_an_alert_s_journey_is_one_trace(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    clock = ManualClock(T0)
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'trace.db'}",
        playbooks_dir=REPO / "playbooks",
    )
    recorder = RecordingHandler(ACTION_NAMES)
    app = await build_app(
        settings, handlers=[recorder], clock=clock, instruments=Instruments.of(tracer=tracer)
    )
    try:
        with tracer.start_as_current_span("POST /api/v1/alerts") as request:
            await app.pipeline.ingest_bytes(
                db_alert(starts_at=T0), "http", format=SourceFormat.NATIVE
            )
        await app.dispatcher.drain()
        clock.advance(dt.timedelta(minutes=5))  # nobody acknowledged: level 1 escalates
        assert await TimerService(app.store, app.pipeline, clock).fire_due() == 1
        await app.dispatcher.drain()
        ack = StatusChange(Status.ACKNOWLEDGED, Actor(ActorKind.SLACK, "UANA", "ana"))
        await app.pipeline.apply(1, ack)  # a Slack button, later, in a request of its own
        await app.dispatcher.drain()
    finally:
        await app.close()

    spans = list(exporter.get_finished_spans())
    trace_id = request.get_span_context().trace_id
    assert {s.context.trace_id for s in spans} == {trace_id}

    (ingest,) = [s for s in spans if s.name == SPAN_INGEST]
    assert ingest.parent is not None
    assert ingest.parent.span_id == request.get_span_context().span_id
    assert ingest.attributes == {"payloads": 1, "alerts": 1}
    # The batch: normalized, then recorded in one transaction where the alert is matched
    # and the playbook decides.
    assert [s.name for s in children(spans, ingest)] == [SPAN_NORMALIZE, SPAN_STORE]
    (store,) = children(spans, ingest)[1:]
    assert store.attributes == {"attempt": 1}
    match, decided = children(spans, store)
    assert (match.name, decided.name) == (SPAN_MATCH, SPAN_DECIDE)
    assert match.attributes is not None
    assert match.attributes["playbooks"] == ("database-unavailable",)
    assert decided.attributes is not None
    assert decided.attributes["disposition"] == "opened"
    assert decided.attributes["incident"] == 1
    # What it decided is delivered later, in the decision's trace.
    delivered = [s.attributes["action"] for s in children(spans, decided) if s.name == SPAN_DELIVER]
    assert delivered == ["pagerduty.trigger", "slack.open_channel", "slack.post"]

    (timer,) = [s for s in spans if s.name == SPAN_TIMER]
    assert timer.attributes == {"incident": 1, "timer": "escalation"}
    paged = [s.attributes["action"] for s in children(spans, timer)]
    assert paged == ["pagerduty.escalate"]

    (change,) = [s for s in spans if s.name == SPAN_CHANGE]
    assert change.attributes == {"incident": 1, "event": "StatusChange"}
    assert [s.attributes["action"] for s in children(spans, change)] == ["pagerduty.acknowledge"]
    assert all(s.attributes["outcome"] == "delivered" for s in spans if s.name == SPAN_DELIVER)


async def test_a_webhook_continues_the_sender_s_trace(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    port = free_port()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'web.db'}",
        playbooks_dir=REPO / "playbooks",
        http_port=port,
    )
    recorder = RecordingHandler(ACTION_NAMES)
    app = await build_app(
        settings,
        handlers=[recorder],
        instruments=Instruments.of(tracer=provider.get_tracer("test")),
    )
    sender_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {
        "content-type": "application/json",
        "traceparent": f"00-{sender_trace}-00f067aa0ba902b7-01",
    }
    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(Service(app).run(stop, on_ready=ready.set))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            sent = await http.post(
                "/api/v1/alerts", content=db_alert(starts_at=T0), headers=headers
            )
            assert sent.status_code == 202
        async with asyncio.timeout(10):
            while len(recorder.delivered) < 3:  # noqa: ASYNC110 - the dispatcher runs apart
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
        await app.close()
    spans = list(exporter.get_finished_spans())
    (request,) = [s for s in spans if s.name == "POST /api/v1/alerts"]
    (ingest,) = [s for s in spans if s.name == SPAN_INGEST]
    assert format(request.context.trace_id, "032x") == sender_trace
    assert ingest.parent is not None
    assert ingest.parent.span_id == request.context.span_id
    deliveries = [s for s in spans if s.name == SPAN_DELIVER]
    assert len(deliveries) == 3
    assert {s.context.trace_id for s in deliveries} == {request.context.trace_id}
