"""The HTTP intake with a real pipeline on SQLite: webhooks in, incidents or dead letters out."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from samples import free_port
from starlette.applications import Starlette

from orchestrator.clock import ManualClock
from orchestrator.ingest.alert import SourceFormat
from orchestrator.ingest.http import (
    IntakeSink,
    PipelineSink,
    binary_cloudevent_to_structured,
    create_intake_app,
    serve,
)
from orchestrator.ingest.normalize import MAX_PAYLOAD_BYTES
from orchestrator.pipeline import Pipeline
from orchestrator.store.protocols import DeadLetter, Disposition
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
TOKEN = "s3cr3t-intake-token"
JSON_HEADERS = {"Content-Type": "application/json"}
STREAM_LINES = (EXAMPLES / "alertmanager-stream.jsonl").read_bytes().splitlines()
POSTGRES_DOWN = STREAM_LINES[4]  # line 5: PostgresDown on orders-db, one alert
ERROR_BUDGET_BURN = STREAM_LINES[3]  # line 4: two ErrorBudgetBurn alerts in one message
CLOUDEVENT = (EXAMPLES / "cloudevent-alert.json").read_bytes()

MakeApp = Callable[..., Starlette]


def dead_letter_recorder(store: SqlStore) -> Callable[[DeadLetter], Awaitable[int]]:
    async def record(letter: DeadLetter) -> int:
        async with store.transaction() as tx:
            return await tx.record_dead_letter(letter)

    return record


@pytest.fixture
def make_app(pipeline: Pipeline, store: SqlStore, clock: ManualClock) -> MakeApp:
    def make(
        *,
        sink: IntakeSink | None = None,
        token: str | None = None,
        max_body: int = MAX_PAYLOAD_BYTES,
        readiness: Callable[[], Awaitable[dict[str, bool]]] | None = None,
    ) -> Starlette:
        return create_intake_app(
            sink or PipelineSink(pipeline),
            dead_letters=dead_letter_recorder(store),
            clock=clock,
            token=token,
            max_body=max_body,
            readiness=readiness,
        )

    return make


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake")


@pytest.fixture
async def client(make_app: MakeApp) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_app()) as opened:
        yield opened


async def only_dead_letter(store: SqlStore) -> DeadLetter:
    (letter,) = await store.list_dead_letters()
    return letter


@pytest.mark.parametrize(
    ("path", "payload", "source", "playbook"),
    [
        ("/api/v1/alerts/alertmanager", POSTGRES_DOWN, "alertmanager", "database-unavailable"),
        ("/api/v1/alerts/grafana", "grafana-alert.json", "grafana", "api-slo-burn"),
        ("/api/v1/alerts/native", "native-alert.json", "native", "database-unavailable"),
        ("/api/v1/alerts/cloudevents", "cloudevent-alert.json", "cloudevents", "api-slo-burn"),
        ("/api/v1/alerts", POSTGRES_DOWN, "alertmanager", "database-unavailable"),
        ("/api/v1/alerts", "grafana-alert.json", "grafana", "api-slo-burn"),
        ("/api/v1/alerts", "native-alert.json", "native", "database-unavailable"),
        ("/api/v1/alerts", "cloudevent-alert.json", "cloudevents", "api-slo-burn"),
    ],
)
async def test_each_route_opens_an_incident(
    client: httpx.AsyncClient,
    store: SqlStore,
    path: str,
    payload: bytes | str,
    source: str,
    playbook: str,
) -> None:
    body = payload if isinstance(payload, bytes) else (EXAMPLES / payload).read_bytes()
    response = await client.post(path, content=body, headers=JSON_HEADERS)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1}
    (alert,) = await store.list_alerts()
    assert (alert.source, alert.disposition, alert.playbook) == (
        source,
        Disposition.OPENED,
        playbook,
    )
    (incident,) = await store.list_incidents()
    assert (incident.number, incident.playbook) == (alert.incident_number, playbook)
    assert await store.list_dead_letters() == []


async def test_every_alert_of_a_message_is_counted(
    client: httpx.AsyncClient, store: SqlStore
) -> None:
    response = await client.post(
        "/api/v1/alerts/alertmanager", content=ERROR_BUDGET_BURN, headers=JSON_HEADERS
    )
    assert response.json() == {"accepted": 2}
    assert len(await store.list_alerts()) == 2


async def test_structured_cloudevent_media_type(client: httpx.AsyncClient, store: SqlStore) -> None:
    response = await client.post(
        "/api/v1/alerts",
        content=CLOUDEVENT,
        headers={"Content-Type": "application/cloudevents+json; charset=utf-8"},
    )
    assert response.status_code == 202, response.text
    (alert,) = await store.list_alerts()
    assert alert.source == "cloudevents"


def binary_mode(event: dict[str, object]) -> tuple[dict[str, str], bytes]:
    """The binary-mode HTTP request carrying the same event as a structured one."""
    headers = {"Content-Type": "application/json"}
    for name in ("specversion", "id", "source", "type", "time", "subject"):
        headers[f"ce-{name}"] = str(event[name])
    return headers, json.dumps(event["data"]).encode()


@pytest.mark.parametrize("path", ["/api/v1/alerts/cloudevents", "/api/v1/alerts"])
async def test_binary_cloudevent_becomes_the_structured_event(
    client: httpx.AsyncClient, store: SqlStore, path: str
) -> None:
    event = json.loads(CLOUDEVENT)
    headers, body = binary_mode(event)
    response = await client.post(path, content=body, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1}
    (alert,) = await store.list_alerts()
    assert (alert.source, alert.disposition) == ("cloudevents", Disposition.OPENED)
    assert alert.labels == event["data"]["labels"]
    (incident,) = await store.list_incidents()
    assert incident.playbook == "api-slo-burn"
    # Same source and id: the structured copy of the event is a redelivery, not a new alert.
    again = await client.post(
        path, content=CLOUDEVENT, headers={"Content-Type": "application/cloudevents+json"}
    )
    assert again.json() == {"accepted": 1}
    assert [a.disposition for a in await store.list_alerts()] == [Disposition.OPENED]


def test_binary_cloudevent_envelope() -> None:
    event = json.loads(CLOUDEVENT)
    headers, body = binary_mode(event)
    headers = {name.lower(): value for name, value in headers.items()}
    headers["ce-subject"] = "checkout-api%2Favailability%20%C3%A9"
    headers["ce-traceparent"] = "00-abc-01"
    envelope = json.loads(binary_cloudevent_to_structured(headers, body))
    assert envelope == {
        **{key: event[key] for key in ("specversion", "id", "source", "type", "time")},
        "subject": "checkout-api/availability \u00e9",
        "traceparent": "00-abc-01",
        "datacontenttype": "application/json",
        "data": event["data"],
    }


async def test_binary_cloudevent_without_an_id_is_dead_lettered(
    client: httpx.AsyncClient, store: SqlStore
) -> None:
    headers, body = binary_mode(json.loads(CLOUDEVENT))
    del headers["ce-id"]
    response = await client.post("/api/v1/alerts/cloudevents", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["field"] == "ce-id"
    letter = await only_dead_letter(store)
    assert letter.raw == body
    assert letter.headers["ce-source"] == headers["ce-source"]


async def test_binary_cloudevent_with_a_bad_body_names_data(
    client: httpx.AsyncClient, store: SqlStore
) -> None:
    headers, _ = binary_mode(json.loads(CLOUDEVENT))
    response = await client.post("/api/v1/alerts", content=b"[1, 2", headers=headers)
    assert response.status_code == 400
    assert response.json()["field"] == "data"
    assert (await only_dead_letter(store)).raw == b"[1, 2"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/alerts", b'{"alerts": [}', "$"),
        ("/api/v1/alerts", b'{"hello": "world"}', "$"),
        ("/api/v1/alerts/native", b'{"status": "firing", "annotations": {}}', "labels"),
        ("/api/v1/alerts/grafana", b"\xff\xfe not utf-8", "$"),
    ],
    ids=["bad-json", "unknown-format", "missing-field", "not-utf8"],
)
async def test_invalid_payload_is_dead_lettered_with_its_exact_bytes(
    client: httpx.AsyncClient, store: SqlStore, path: str, body: bytes, field: str
) -> None:
    response = await client.post(path, content=body, headers={**JSON_HEADERS, "X-Trace": "t-1"})
    assert response.status_code == 400
    answer = response.json()
    assert answer["field"] == field
    assert "\n" not in answer["error"]
    letter = await only_dead_letter(store)
    assert answer["dead_letter_id"] == letter.id
    assert letter.raw == body
    assert letter.origin == f"http:{path}"
    assert letter.error == answer["error"]
    assert letter.received_at == T0
    assert letter.headers["x-trace"] == "t-1"
    assert await store.list_alerts() == []


async def test_forced_format_is_checked(client: httpx.AsyncClient, store: SqlStore) -> None:
    native = (EXAMPLES / "native-alert.json").read_bytes()
    response = await client.post(
        "/api/v1/alerts/alertmanager", content=native, headers=JSON_HEADERS
    )
    assert response.status_code == 400
    assert (await only_dead_letter(store)).origin == "http:/api/v1/alerts/alertmanager"


async def test_body_over_the_limit_is_413_and_not_dead_lettered(
    make_app: MakeApp, store: SqlStore
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 20

    async with client_for(make_app(max_body=64)) as client:
        declared = await client.post(
            "/api/v1/alerts/alertmanager", content=POSTGRES_DOWN, headers=JSON_HEADERS
        )
        # No Content-Length at all: the limit holds on the bytes actually read.
        streamed = await client.post("/api/v1/alerts", content=chunks(), headers=JSON_HEADERS)
        small = await client.post("/api/v1/alerts", content=b'{"x": 1}', headers=JSON_HEADERS)
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert "64 bytes" in streamed.json()["error"]
    assert small.status_code == 400  # under the limit, read and judged on its content
    assert len(await store.list_dead_letters()) == 1


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/api/v1/alerts", "text/plain"),
        ("/api/v1/alerts", "application/x-www-form-urlencoded"),
        ("/api/v1/alerts", None),
        ("/api/v1/alerts/grafana", "application/json; charset=latin-1"),
        ("/api/v1/alerts/alertmanager", "application/cloudevents+json"),
    ],
)
async def test_other_content_types_are_415(
    client: httpx.AsyncClient, store: SqlStore, path: str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post(path, content=POSTGRES_DOWN, headers=headers)
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]
    assert await store.list_dead_letters() == []
    assert await store.list_alerts() == []


async def test_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/alerts")).status_code == 405
    assert (await client.post("/healthz")).status_code == 405


async def test_bearer_token_is_required_and_never_repeated(
    make_app: MakeApp, store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = "/api/v1/alerts/alertmanager"
    async with client_for(make_app(token=TOKEN)) as client:
        missing = await client.post(path, content=POSTGRES_DOWN, headers=JSON_HEADERS)
        basic = await client.post(
            path, content=POSTGRES_DOWN, headers={**JSON_HEADERS, "Authorization": f"Basic {TOKEN}"}
        )
        wrong = await client.post(
            path, content=POSTGRES_DOWN, headers={**JSON_HEADERS, "Authorization": "Bearer nope"}
        )
        good = {**JSON_HEADERS, "Authorization": f"Bearer {TOKEN}"}
        right = await client.post(path, content=POSTGRES_DOWN, headers=good)
        invalid = await client.post(path, content=b"{", headers=good)
        health = await client.get("/healthz")
    for response in (missing, basic, wrong):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert right.status_code == 202
    assert invalid.status_code == 400
    assert health.status_code == 200  # probes carry no token
    assert len(await store.list_alerts()) == 1
    letter = await only_dead_letter(store)
    assert "authorization" not in letter.headers
    assert TOKEN not in json.dumps(letter.headers)
    for response in (missing, basic, wrong, right, invalid):
        assert TOKEN not in response.text
    assert TOKEN not in caplog.text


async def test_token_must_not_be_empty(make_app: MakeApp) -> None:
    with pytest.raises(ValueError, match="token"):
        make_app(token="")


class UnavailableSink:
    async def accept(
        self, raw: bytes, *, format: SourceFormat | None, origin: str, headers: dict[str, str]
    ) -> int:
        raise ConnectionError("kafka: no broker available")


async def test_failing_sink_answers_503_so_the_sender_retries(
    make_app: MakeApp, store: SqlStore
) -> None:
    async with client_for(make_app(sink=UnavailableSink())) as client:
        response = await client.post(
            "/api/v1/alerts/alertmanager", content=POSTGRES_DOWN, headers=JSON_HEADERS
        )
    assert response.status_code == 503
    assert "retry" in response.json()["error"]
    assert await store.list_dead_letters() == []


async def test_failing_dead_letter_store_answers_503(
    pipeline: Pipeline, clock: ManualClock
) -> None:
    async def broken(letter: DeadLetter) -> int:
        raise OSError("disk full")

    app = create_intake_app(PipelineSink(pipeline), dead_letters=broken, clock=clock)
    async with client_for(app) as client:
        response = await client.post("/api/v1/alerts", content=b"{", headers=JSON_HEADERS)
    assert response.status_code == 503


async def test_pipeline_sink_kicks_the_dispatcher(make_app: MakeApp, pipeline: Pipeline) -> None:
    kicks: list[str] = []

    async def kick() -> None:
        kicks.append("kick")

    async with client_for(make_app(sink=PipelineSink(pipeline, on_accepted=kick))) as client:
        await client.post("/api/v1/alerts", content=POSTGRES_DOWN, headers=JSON_HEADERS)
        await client.post("/api/v1/alerts", content=b"{", headers=JSON_HEADERS)
    assert kicks == ["kick"]


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize(
    ("checks", "status", "word"),
    [
        ({"store": True, "kafka": True}, 200, "ready"),
        ({"store": True, "kafka": False}, 503, "not ready"),
    ],
)
async def test_readyz(make_app: MakeApp, checks: dict[str, bool], status: int, word: str) -> None:
    async def readiness() -> dict[str, bool]:
        return checks

    async with client_for(make_app(readiness=readiness)) as client:
        response = await client.get("/readyz")
    assert response.status_code == status
    assert response.json() == {"status": word, "checks": checks}


async def test_readyz_when_the_check_itself_fails(make_app: MakeApp) -> None:
    async def readiness() -> dict[str, bool]:
        raise RuntimeError("store unreachable")

    async with client_for(make_app(readiness=readiness)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503


async def wait_until_listening(client: httpx.AsyncClient, server: asyncio.Task[None]) -> None:
    for _ in range(200):
        assert not server.done(), "the server stopped before it was ready"
        try:
            await client.get("/healthz")
        except httpx.TransportError:
            await asyncio.sleep(0.025)
        else:
            return
    pytest.fail("the intake did not start listening")


async def test_serve_over_tcp_and_stop(make_app: MakeApp, store: SqlStore) -> None:
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(
        serve(make_app(token=TOKEN), host="127.0.0.1", port=port, stop=stop)
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await wait_until_listening(client, server)
            response = await client.post(
                "/api/v1/alerts/alertmanager",
                content=POSTGRES_DOWN,
                headers={**JSON_HEADERS, "Authorization": f"Bearer {TOKEN}"},
            )
        assert response.status_code == 202, response.text
        assert len(await store.list_incidents()) == 1
        stop.set()
        await asyncio.wait_for(server, timeout=5)
    finally:
        stop.set()
        if not server.done():
            server.cancel()
            with pytest.raises(asyncio.CancelledError):
                await server
