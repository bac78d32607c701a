"""Signed PagerDuty v3 webhooks through the real pipeline: acknowledges and resolves made in
PagerDuty reach the incident, with the PagerDuty user on the timeline; nothing else does."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fakes.pagerduty import FakePagerDuty
from fakes.pagerduty_webhooks import SIGNATURE_HEADER, sign
from samples import db_alert as sample_alert
from starlette.applications import Starlette

from orchestrator.clock import ManualClock
from orchestrator.incident.model import ActorKind, Status
from orchestrator.ingest.pagerduty import pagerduty_routes, parse_dedup_key, signature_matches
from orchestrator.pipeline import Pipeline
from orchestrator.store.sql import SqlStore
from orchestrator.timeline import Kind

T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
SECRET = "whsec-test-7d1c"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
OUR_KEY = "orch-1:0:trigger:0"


def db_alert(service: str = "orders-db") -> bytes:
    return sample_alert(service, starts_at=T0)


class PagerDuty:
    """The fake's account, used only to write webhook bodies as PagerDuty would."""

    def __init__(self) -> None:
        self.fake = FakePagerDuty(routing_keys={ROUTING_KEY: "Data"}, clock=ManualClock(T0))
        self.service = self.fake.services[next(iter(self.fake.services))]
        self.ada = self.fake.add_user("Ada Lovelace", "ada@example.com")

    def page(self, dedup_key: str) -> None:
        event = {"payload": {"summary": "down", "source": "db", "severity": "critical"}}
        with self.fake.lock:
            self.fake.create_incident(dedup_key, self.service, event)

    def body(self, event_type: str, dedup_key: str, agent: str | None = "ada") -> bytes:
        user = self.ada if agent == "ada" else None
        return self.fake.webhook_body(event_type, dedup_key, user)


@pytest.fixture
def pagerduty() -> PagerDuty:
    return PagerDuty()


@pytest.fixture
async def opened(pipeline: Pipeline) -> int:
    report = await pipeline.ingest_bytes(db_alert(), "test")
    (number,) = {o.incident_number for o in report.outcomes}
    assert number == 1
    return number


@pytest.fixture
async def client(pipeline: Pipeline) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=pagerduty_routes(pipeline, SECRET))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://orchestrator") as http:
        yield http


async def post(
    client: httpx.AsyncClient, body: bytes, signature: str | None = None
) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature if signature is not None else sign(body, SECRET),
    }
    return await client.post("/pagerduty/webhook", content=body, headers=headers)


async def status_entries(store: SqlStore, number: int) -> list[tuple[Kind, str, str]]:
    kinds = {Kind.INCIDENT_ACKNOWLEDGED, Kind.INCIDENT_RESOLVED}
    return [
        (entry.kind, entry.actor.kind.value, entry.actor.name)
        for entry in await store.timeline(number)
        if entry.kind in kinds
    ]


async def test_acknowledged_in_pagerduty_acknowledges_the_incident(
    client: httpx.AsyncClient, store: SqlStore, pagerduty: PagerDuty, opened: int
) -> None:
    pagerduty.page(OUR_KEY)
    answer = await post(client, pagerduty.body("incident.acknowledged", OUR_KEY))
    assert answer.status_code == 200
    assert answer.json() == {"applied": "acknowledged #1"}
    incident = await store.get_incident(opened)
    assert incident is not None
    assert incident.status is Status.ACKNOWLEDGED
    (entry,) = [e for e in await store.timeline(opened) if e.kind is Kind.INCIDENT_ACKNOWLEDGED]
    assert (entry.actor.kind, entry.actor.id, entry.actor.name) == (
        ActorKind.PAGERDUTY,
        pagerduty.ada,
        "Ada Lovelace",
    )
    assert entry.data["reason"] == "acknowledged in PagerDuty"
    assert entry.occurred_at == T0


async def test_a_replayed_event_changes_nothing_more(
    client: httpx.AsyncClient, store: SqlStore, pagerduty: PagerDuty, opened: int
) -> None:
    pagerduty.page(OUR_KEY)
    body = pagerduty.body("incident.acknowledged", OUR_KEY)
    assert (await post(client, body)).status_code == 200
    before = await store.timeline(opened)
    again = await post(client, body)
    assert again.status_code == 200
    assert "ignored" in again.json()
    assert len(await store.timeline(opened)) == len(before)


async def test_resolved_in_pagerduty_resolves_the_incident(
    client: httpx.AsyncClient, store: SqlStore, pagerduty: PagerDuty, opened: int
) -> None:
    pagerduty.page(OUR_KEY)
    assert (await post(client, pagerduty.body("incident.acknowledged", OUR_KEY))).is_success
    answer = await post(client, pagerduty.body("incident.resolved", OUR_KEY, agent=None))
    assert answer.json() == {"applied": "resolved #1"}
    incident = await store.get_incident(opened)
    assert incident is not None
    assert incident.status is Status.RESOLVED
    assert await status_entries(store, opened) == [
        (Kind.INCIDENT_ACKNOWLEDGED, "pagerduty", "Ada Lovelace"),
        (Kind.INCIDENT_RESOLVED, "pagerduty", "PagerDuty"),
    ]
    # The echo of our own resolve (pagerduty.resolve on_resolve) is a no-op.
    echo = await post(client, pagerduty.body("incident.resolved", OUR_KEY, agent=None))
    assert (echo.status_code, len(await status_entries(store, opened))) == (200, 2)


async def test_a_wrong_signature_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
    store: SqlStore,
    pagerduty: PagerDuty,
    opened: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pagerduty.page(OUR_KEY)
    body = pagerduty.body("incident.acknowledged", OUR_KEY)
    before = await store.timeline(opened)
    wrong = await post(client, body, sign(body, "another-secret"))
    missing = await client.post("/pagerduty/webhook", content=body)
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert len(await store.timeline(opened)) == len(before)
    incident = await store.get_incident(opened)
    assert incident is not None
    assert incident.status is Status.TRIGGERED
    assert "refused a PagerDuty webhook" in caplog.text
    assert SECRET not in caplog.text


async def test_a_rotated_secret_list_is_accepted(
    client: httpx.AsyncClient, store: SqlStore, pagerduty: PagerDuty, opened: int
) -> None:
    pagerduty.page(OUR_KEY)
    body = pagerduty.body("incident.acknowledged", OUR_KEY)
    both = f"{sign(body, 'the-old-secret')}, {sign(body, SECRET)}"
    assert (await post(client, body, both)).json() == {"applied": "acknowledged #1"}


async def test_other_incidents_and_events_are_ignored(
    client: httpx.AsyncClient, store: SqlStore, pagerduty: PagerDuty, opened: int
) -> None:
    before = await store.timeline(opened)
    for key in ("checkout/latency", "other-1:0:trigger:0", "orch-x:0:trigger:0"):
        pagerduty.page(key)
        answer = await post(client, pagerduty.body("incident.acknowledged", key))
        assert answer.status_code == 200
        assert answer.json() == {"ignored": "not an incident this orchestrator paged"}
    pagerduty.page(OUR_KEY)
    escalated = await post(client, pagerduty.body("incident.escalated", OUR_KEY, agent=None))
    assert escalated.status_code == 200
    assert "ignored" in escalated.json()
    unknown = "orch-99:0:trigger:0"
    pagerduty.page(unknown)
    missing = await post(client, pagerduty.body("incident.acknowledged", unknown))
    assert missing.json() == {"ignored": "no incident #99"}
    assert len(await store.timeline(opened)) == len(before)


async def test_a_page_from_before_a_reopen_does_not_move_the_incident(
    client: httpx.AsyncClient,
    pipeline: Pipeline,
    store: SqlStore,
    clock: ManualClock,
    pagerduty: PagerDuty,
    opened: int,
) -> None:
    pagerduty.page(OUR_KEY)
    assert (await post(client, pagerduty.body("incident.resolved", OUR_KEY))).is_success
    clock.advance(dt.timedelta(minutes=30))
    alert = json.loads(db_alert())
    alert["starts_at"] = clock.now().isoformat()
    await pipeline.ingest_bytes(json.dumps(alert).encode(), "test")
    reopened = await store.get_incident(opened)
    assert reopened is not None
    assert (reopened.status, reopened.cycle) == (Status.TRIGGERED, 1)
    late = await post(client, pagerduty.body("incident.resolved", OUR_KEY))
    assert late.json() == {"ignored": "about an earlier cycle of incident #1"}
    current = await store.get_incident(opened)
    assert current is not None
    assert current.status is Status.TRIGGERED


async def test_a_body_that_is_not_json_is_a_400(client: httpx.AsyncClient) -> None:
    for body, message in ((b"{not json", "body is not JSON"), (b"[]", "no 'event' object")):
        answer = await post(client, body)
        assert answer.status_code == 400
        assert message in answer.json()["error"]


def test_signatures_and_keys(pipeline: Pipeline) -> None:
    body = b'{"event": {}}'
    assert signature_matches(body, SECRET, sign(body, SECRET))
    assert not signature_matches(body, SECRET, "")
    assert not signature_matches(body, SECRET, "v1=é")
    assert parse_dedup_key("orch-12:3:trigger:0", "orch") == (12, 3)
    assert parse_dedup_key("orch-prod-12:0:trigger:0", "orch-prod") == (12, 0)
    assert parse_dedup_key("orch-12", "orch") is None
    assert parse_dedup_key(None, "orch") is None
    with pytest.raises(ValueError, match="must not be empty"):
        pagerduty_routes(pipeline, "")
