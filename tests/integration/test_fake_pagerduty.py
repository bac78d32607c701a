"""The fake PagerDuty, driven by the official `pagerduty` clients over real https."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pagerduty
import pytest
from fakes.pagerduty import FakePagerDuty
from fakes.pagerduty_spec import SPECS_ENV, SpecChecker
from fakes.pagerduty_webhooks import (
    SIGNATURE_HEADER,
    SUBSCRIPTION_HEADER,
    WEBHOOK_ID_HEADER,
    send_webhook,
    sign,
    signature_matches,
)
from fakes.server import Served, serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orchestrator.clock import ManualClock

T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
TOKEN = "y_NbAkKc66ryYTWUXYEu"
ENQUEUE = "/v2/enqueue"


class Account:
    """The people and policy every test's fake starts with."""

    def __init__(self, fake: FakePagerDuty) -> None:
        self.service = next(iter(fake.services))
        self.ada = fake.add_user("Ada Lovelace", "ada@example.com")
        self.grace = fake.add_user("Grace Hopper", "grace@example.com")
        self.linus = fake.add_user("Linus Torvalds", "linus@example.com")
        self.primary = fake.add_schedule("Primary rotation")
        self.secondary = fake.add_schedule("Secondary rotation")
        self.policy = fake.add_escalation_policy("Checkout", service_ids=(self.service,))
        self.other_policy = fake.add_escalation_policy("Search")
        fake.set_oncall(self.policy, 1, self.ada, self.primary)
        fake.set_oncall(self.policy, 2, self.grace, self.secondary)
        fake.set_oncall(self.policy, 3, self.linus)
        fake.set_oncall(self.other_policy, 1, self.linus, self.primary)


@pytest.fixture
def fake() -> FakePagerDuty:
    return FakePagerDuty(
        routing_keys={ROUTING_KEY: "Checkout API"}, api_token=TOKEN, clock=ManualClock(T0)
    )


@pytest.fixture
def account(fake: FakePagerDuty) -> Account:
    return Account(fake)


@pytest.fixture
def served(fake: FakePagerDuty, account: Account, tmp_path: Path) -> Iterator[Served]:
    with serve(fake.app, tls_dir=tmp_path) as running:
        yield running


def quick(client: pagerduty.ApiClient) -> None:
    # The clients back off from 1.5 s doubling; a constant millisecond keeps retry tests fast.
    client.sleep_timer = 0.001
    client.sleep_timer_base = 1


@pytest.fixture
def events(served: Served) -> Iterator[pagerduty.EventsApiV2Client]:
    # The clients are httpx2.Client subclasses: `verify` takes the context trusting the fake's CA.
    with pagerduty.EventsApiV2Client(
        ROUTING_KEY, base_url=served.url, verify=served.ssl_context()
    ) as client:
        quick(client)
        yield client


@pytest.fixture
def rest(served: Served) -> Iterator[pagerduty.RestApiV2Client]:
    with pagerduty.RestApiV2Client(
        TOKEN, base_url=served.url, verify=served.ssl_context()
    ) as client:
        quick(client)
        yield client


def attempts(fake: FakePagerDuty, path: str = ENQUEUE) -> int:
    return sum(1 for request in fake.requests if request.path == path)


# Events API v2


def test_a_repeated_trigger_dedups_into_one_incident(
    fake: FakePagerDuty, events: pagerduty.EventsApiV2Client
) -> None:
    links = [{"href": "https://grafana.example.com/d/checkout", "text": "Dashboard"}]
    for _ in range(2):
        key = events.trigger(
            "Checkout p99 above 2s",
            "checkout-7f9c",
            dedup_key="checkout/latency",
            severity="error",
            custom_details={"p99_ms": 2300},
            links=links,
        )
        assert key == "checkout/latency"
    assert fake.incidents_created == 1
    assert fake.deduplicated == 1
    incident = fake.incidents["checkout/latency"]
    assert (incident.status, incident.summary, incident.severity) == (
        "triggered",
        "Checkout p99 above 2s",
        "error",
    )
    assert incident.custom_details == {"p99_ms": 2300}
    assert incident.links == links
    assert [event["event_action"] for event in incident.events] == ["trigger", "trigger"]
    assert [(e.status, e.incident_id) for e in fake.events] == [(202, incident.id)] * 2
    assert fake.violations == []


def test_a_trigger_without_a_dedup_key_gets_one(
    fake: FakePagerDuty, events: pagerduty.EventsApiV2Client
) -> None:
    key = events.trigger("Disk full", "db-3", severity="warning")
    assert len(key) == 32
    assert fake.incidents[key].severity == "warning"
    assert fake.violations == []


def test_acknowledge_and_resolve_move_the_incident(
    fake: FakePagerDuty,
    events: pagerduty.EventsApiV2Client,
    rest: pagerduty.RestApiV2Client,
) -> None:
    key = events.trigger("Queue backlog", "worker-2", dedup_key="queue/backlog")
    assert events.acknowledge(key) == key
    assert fake.incidents[key].status == "acknowledged"
    assert events.resolve(key) == key
    incident = fake.incidents[key]
    assert incident.status == "resolved"
    assert [e["event_action"] for e in incident.events] == ["trigger", "acknowledge", "resolve"]
    found = rest.list_all("incidents", params={"incident_key": key, "statuses": ["resolved"]})
    assert [(i["id"], i["status"], i["incident_key"]) for i in found] == [
        (incident.id, "resolved", key)
    ]
    assert rest.list_all("incidents", params={"statuses": ["triggered", "acknowledged"]}) == []
    # A trigger after the resolve opens a fresh incident under the same key.
    events.trigger("Queue backlog again", "worker-2", dedup_key=key)
    assert fake.incidents_created == 2
    assert fake.incidents[key].id != incident.id
    assert fake.violations == []


def test_an_unknown_routing_key_is_an_invalid_event(fake: FakePagerDuty, served: Served) -> None:
    with (
        pagerduty.EventsApiV2Client(
            "ffffffffffffffffffffffffffffffff", base_url=served.url, verify=served.ssl_context()
        ) as stranger,
        pytest.raises(pagerduty.HttpError) as raised,
    ):
        stranger.trigger("Nobody listens", "host-1")
    assert raised.value.response is not None
    assert raised.value.response.status_code == 400
    assert raised.value.response.json() == {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": ["Invalid routing key"],
    }
    assert fake.incidents_created == 0
    assert [event.status for event in fake.events] == [400]
    assert fake.violations == []


def test_the_client_retries_429_without_limit_and_ignores_retry_after(
    fake: FakePagerDuty, events: pagerduty.EventsApiV2Client
) -> None:
    # More 429s than max_http_attempts (10): by default that cap does not apply to 429.
    fake.fail_next(ENQUEUE, status=429, retry_after=30, times=12)
    started = time.perf_counter()
    key = events.trigger("Rate limited", "host-1", dedup_key="rl")
    elapsed = time.perf_counter() - started
    assert key == "rl"
    assert attempts(fake) == 13
    assert [r.status for r in fake.requests] == [429] * 12 + [202]
    # Honouring "Retry-After: 30" would have taken six minutes; the client uses its own backoff.
    assert elapsed < 10
    assert fake.incidents_created == 1


def test_retry_429_caps_the_rate_limit_retries(
    fake: FakePagerDuty, events: pagerduty.EventsApiV2Client
) -> None:
    fake.fail_next(ENQUEUE, status=429, retry_after=30, times=50)
    events.retry[429] = 2
    with pytest.raises(pagerduty.HttpError) as raised:
        events.trigger("Rate limited", "host-1")
    assert raised.value.response is not None
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "30"
    assert attempts(fake) == 3
    assert fake.incidents_created == 0


def test_max_http_attempts_caps_a_limited_retry(
    fake: FakePagerDuty, events: pagerduty.EventsApiV2Client
) -> None:
    fake.fail_next(ENQUEUE, status=429, times=50)
    events.retry[429] = 100
    events.max_http_attempts = 3
    with pytest.raises(pagerduty.HttpError):
        events.trigger("Rate limited", "host-1")
    # The client stops once its retries so far exceed max_http_attempts: 1 try + 4 retries.
    assert attempts(fake) == 5


def test_an_outage_answers_503_until_it_ends(
    fake: FakePagerDuty,
    events: pagerduty.EventsApiV2Client,
    rest: pagerduty.RestApiV2Client,
    account: Account,
) -> None:
    fake.outage(True)
    with pytest.raises(pagerduty.ServerHttpError) as raised:
        events.trigger("During the outage", "host-1")
    assert raised.value.response is not None
    assert raised.value.response.status_code == 503
    assert attempts(fake) == 7  # the Events client's retry[503] == 6
    with pytest.raises(pagerduty.ServerHttpError):
        rest.rget(f"/users/{account.ada}")
    assert attempts(fake, f"/users/{account.ada}") == 1  # the REST client retries no 5xx
    fake.outage(False)
    assert events.trigger("After the outage", "host-1", dedup_key="after") == "after"
    assert fake.incidents_created == 1


def test_one_injected_500_is_retried_through(
    fake: FakePagerDuty, events: pagerduty.EventsApiV2Client
) -> None:
    fake.fail_next(ENQUEUE, status=500, body={"status": "error", "message": "boom"})
    assert events.trigger("Flaky", "host-1", dedup_key="flaky") == "flaky"
    assert [r.status for r in fake.requests] == [500, 202]
    assert fake.incidents_created == 1


def test_a_delay_holds_every_answer(
    fake: FakePagerDuty, events: pagerduty.EventsApiV2Client
) -> None:
    fake.delay(0.3)
    started = time.perf_counter()
    events.trigger("Slow", "host-1")
    slow = time.perf_counter() - started
    fake.delay(0)
    started = time.perf_counter()
    events.trigger("Fast", "host-1")
    fast = time.perf_counter() - started
    assert slow >= 0.3
    assert fast < slow
    assert fake.incidents_created == 2


def test_a_change_event_is_recorded(
    fake: FakePagerDuty, events: pagerduty.EventsApiV2Client
) -> None:
    # submit() builds its own timestamp with a call that fails in pagerduty 7.2; pass one.
    events.submit("Deployed checkout v2", source="ci", timestamp="2026-11-25T15:00:00Z")
    assert [c["payload"]["summary"] for c in fake.change_events] == ["Deployed checkout v2"]
    assert fake.incidents_created == 0
    assert fake.violations == []


# Requests that break PagerDuty's published contract


def test_a_body_against_the_schema_is_refused_and_recorded(
    fake: FakePagerDuty, events: pagerduty.EventsApiV2Client
) -> None:
    if fake.spec_check_skipped_reason:
        pytest.skip(fake.spec_check_skipped_reason)
    with pytest.raises(pagerduty.HttpError) as raised:
        events.send_event(
            "trigger", payload={"summary": "Bad", "source": "host-1", "severity": "fatal"}
        )
    assert raised.value.response is not None
    assert raised.value.response.status_code == 400
    assert raised.value.response.json()["status"] == "invalid event"
    schema_problems = [v for v in fake.violations if "body: payload/severity" in v]
    assert schema_problems, fake.violations
    assert "'fatal' is not one of" in schema_problems[0]
    assert fake.incidents_created == 0


def test_a_summary_over_1024_characters_is_refused(
    fake: FakePagerDuty, events: pagerduty.EventsApiV2Client
) -> None:
    with pytest.raises(pagerduty.HttpError) as raised:
        events.trigger("x" * 1025, "host-1")
    assert raised.value.response is not None
    assert raised.value.response.status_code == 400
    assert any("payload.summary" in error for error in raised.value.response.json()["errors"])
    assert any("payload.summary" in violation for violation in fake.violations)
    events.trigger("x" * 1024, "host-1")
    assert fake.incidents_created == 1


def test_a_body_that_is_not_json_is_an_unrecognized_object(
    fake: FakePagerDuty, served: Served
) -> None:
    with httpx.Client(base_url=served.url, verify=served.ssl_context()) as client:
        answer = client.post(
            ENQUEUE, content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 400
    assert answer.json()["status"] == "Unrecognized object"
    assert [(e.status, e.body) for e in fake.events] == [(400, None)]


def test_undocumented_rest_paths_and_parameters_are_violations(
    fake: FakePagerDuty, rest: pagerduty.RestApiV2Client, account: Account
) -> None:
    if fake.spec_check_skipped_reason:
        pytest.skip(fake.spec_check_skipped_reason)
    # `escalation_policy_id` without the [] is a typo PagerDuty silently ignores.
    answer = rest.get("/oncalls", params={"escalation_policy_id": account.policy})
    assert answer.status_code == 200
    assert rest.get("/oncall").status_code == 404
    assert rest.get("/incidents", params={"statuses[]": "open"}).status_code == 200
    assert fake.violations == [
        "GET /oncalls: unknown query parameter 'escalation_policy_id'",
        "GET /oncall: no such path in PagerDuty's rest API description",
        "GET /incidents: statuses[]='open' is not one of ['triggered', 'acknowledged', 'resolved']",
    ]


def test_a_missing_specs_folder_skips_the_check_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SPECS_ENV, str(tmp_path / "vendor-specs"))
    reason = FakePagerDuty().spec_check_skipped_reason
    assert reason is not None
    assert str(tmp_path / "vendor-specs" / "pagerduty" / "rest.openapiv3.json") in reason
    assert SpecChecker().body_problems("events", "POST", ENQUEUE, {"nonsense": True}) == []


# REST API v2


def test_oncalls_page_through_with_users_included(
    fake: FakePagerDuty, rest: pagerduty.RestApiV2Client, account: Account
) -> None:
    oncalls = rest.list_all(
        "oncalls",
        params={"escalation_policy_ids": [account.policy], "include": ["users"], "earliest": True},
        page_size=2,
    )
    assert [(o["escalation_level"], o["user"]["email"]) for o in oncalls] == [
        (1, "ada@example.com"),
        (2, "grace@example.com"),
        (3, "linus@example.com"),
    ]
    first = oncalls[0]
    assert first["user"]["type"] == "user"
    assert first["schedule"]["id"] == account.primary
    assert first["escalation_policy"]["id"] == account.policy
    assert (first["start"], first["end"]) == ("2026-11-25T15:00:00Z", "2026-11-26T15:00:00Z")
    # A direct (permanent) on-call has no schedule and no shift bounds, as in PagerDuty.
    assert (oncalls[2]["schedule"], oncalls[2]["start"], oncalls[2]["end"]) == (None, None, None)
    assert attempts(fake, "/oncalls") == 2
    by_schedule = rest.list_all("oncalls", params={"schedule_ids": [account.primary]})
    assert sorted(o["user"]["summary"] for o in by_schedule) == ["Ada Lovelace", "Linus Torvalds"]
    assert fake.violations == []


def test_oncalls_answer_pagination_fields(
    rest: pagerduty.RestApiV2Client, account: Account
) -> None:
    body = rest.get("/oncalls", params={"limit": 1, "offset": 1, "total": "true"}).json()
    assert (body["limit"], body["offset"], body["more"], body["total"]) == (1, 1, True, 4)
    assert len(body["oncalls"]) == 1
    last = rest.get("/oncalls", params={"limit": 2, "offset": 3}).json()
    assert (last["more"], last["total"], len(last["oncalls"])) == (False, None, 1)


def test_users_policies_and_incidents_read_back(
    fake: FakePagerDuty,
    rest: pagerduty.RestApiV2Client,
    events: pagerduty.EventsApiV2Client,
    account: Account,
) -> None:
    user = rest.rget(f"/users/{account.grace}")
    assert (user["id"], user["type"], user["email"]) == (account.grace, "user", "grace@example.com")
    assert user["self"].endswith(f"/users/{account.grace}")
    assert user["html_url"] == f"https://fake-orchestrator.pagerduty.com/users/{account.grace}"
    assert [u["name"] for u in rest.list_all("users", params={"query": "hopper"})] == [
        "Grace Hopper"
    ]
    policy = rest.rget(f"/escalation_policies/{account.policy}")
    assert [rule["targets"][0]["type"] for rule in policy["escalation_rules"]] == [
        "schedule_reference",
        "schedule_reference",
        "user_reference",
    ]
    assert [service["id"] for service in policy["services"]] == [account.service]
    key = events.trigger("Payment errors", "payments-1", dedup_key="payments/errors")
    incident = rest.rget(f"/incidents/{fake.incidents[key].id}")
    assert (incident["incident_key"], incident["status"], incident["title"]) == (
        key,
        "triggered",
        "Payment errors",
    )
    assert [a["assignee"]["id"] for a in incident["assignments"]] == [account.ada]
    assert incident["service"]["summary"] == "Checkout API"
    # `self` links lead back to the fake, so the client can follow them.
    assert rest.rget(incident["assignments"][0]["assignee"])["name"] == "Ada Lovelace"
    with pytest.raises(pagerduty.HttpError) as raised:
        rest.rget("/users/PNOSUCH")
    assert raised.value.response is not None
    assert raised.value.response.status_code == 404
    assert fake.violations == []


def test_a_wrong_token_is_refused_with_401(served: Served, account: Account) -> None:
    with (
        pagerduty.RestApiV2Client(
            "not-the-token", base_url=served.url, verify=served.ssl_context()
        ) as stranger,
        pytest.raises(pagerduty.HttpError) as raised,
    ):
        stranger.rget(f"/users/{account.ada}")
    assert raised.value.response is not None
    assert raised.value.response.status_code == 401
    assert raised.value.response.json() == {
        "error": {"message": "Authentication Required", "code": 2006}
    }


def test_rest_answers_match_the_published_response_schemas(
    fake: FakePagerDuty,
    served: Served,
    events: pagerduty.EventsApiV2Client,
    account: Account,
) -> None:
    checker = SpecChecker()
    if checker.skipped_reason:
        pytest.skip(checker.skipped_reason)
    incident_id = fake.incidents[events.trigger("Shape check", "host-1", dedup_key="s")].id
    headers = {
        "Authorization": f"Token token={TOKEN}",
        "Accept": "application/vnd.pagerduty+json;version=2",
    }
    paths = [
        "/oncalls",
        "/users",
        f"/users/{account.ada}",
        "/incidents",
        f"/incidents/{incident_id}",
        f"/escalation_policies/{account.policy}",
    ]
    with httpx.Client(base_url=served.url, verify=served.ssl_context(), headers=headers) as client:
        for path in paths:
            answer = client.get(path)
            assert answer.status_code == 200, path
            route = path.split("?")[0]
            assert checker.response_problems("GET", route, 200, answer.json()) == [], path
        # The description knows on-calls only with references; include[] swaps in the objects.
        included = client.get("/oncalls?include[]=users&include[]=escalation_policies").json()
    for oncall in included["oncalls"]:
        assert checker.schema_problems("User", oncall["user"]) == []
        assert checker.schema_problems("EscalationPolicy", oncall["escalation_policy"]) == []
    assert checker.response_problems("GET", "/users", 200, {"users": [{"id": 7}]}) != []
    assert fake.violations == []


# Webhooks v3


def test_a_webhook_body_is_signed_and_delivered(
    fake: FakePagerDuty,
    events: pagerduty.EventsApiV2Client,
    rest: pagerduty.RestApiV2Client,
    account: Account,
    tmp_path: Path,
) -> None:
    key = events.trigger("Cart errors", "cart-1", dedup_key="cart/errors")
    body = fake.webhook_body("incident.acknowledged", key, account.ada)
    event = json.loads(body)["event"]
    assert (event["event_type"], event["resource_type"], event["client"]) == (
        "incident.acknowledged",
        "incident",
        None,
    )
    assert event["occurred_at"] == "2026-11-25T15:00:00.000Z"
    assert (event["agent"]["id"], event["agent"]["type"]) == (account.ada, "user_reference")
    data = event["data"]
    assert (data["id"], data["incident_key"], data["status"], data["title"]) == (
        fake.incidents[key].id,
        key,
        "acknowledged",
        "Cart errors",
    )
    assert data["service"]["id"] == account.service
    assert data["html_url"].startswith("https://fake-orchestrator.pagerduty.com/incidents/")
    # PagerDuty acknowledged it before telling anyone, so the REST API already agrees.
    assert rest.rget(f"/incidents/{data['id']}")["status"] == "acknowledged"

    secret = "whsec-test-7d1c"
    expected = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert sign(body, secret) == expected
    assert signature_matches(body, secret, f"v1=stale, {expected}")
    assert not signature_matches(body.replace(b"acknowledged", b"resolved"), secret, expected)

    received: list[tuple[bytes, dict[str, str]]] = []

    async def receive(request: Request) -> Response:
        raw = await request.body()
        received.append((raw, dict(request.headers)))
        valid = signature_matches(raw, secret, request.headers[SIGNATURE_HEADER])
        return Response(status_code=202 if valid else 401)

    receiver = Starlette(routes=[Route("/hooks/pagerduty", receive, methods=["POST"])])
    receiver_tls = tmp_path / "receiver"
    receiver_tls.mkdir()
    with serve(receiver, tls_dir=receiver_tls) as app:
        url = f"{app.url}/hooks/pagerduty"
        answer = send_webhook(url, body, secret, verify=app.ssl_context(), webhook_id="wh-1")
        wrong = send_webhook(url, body, "another-secret", verify=app.ssl_context())
    assert (answer.status_code, wrong.status_code) == (202, 401)
    raw, headers = received[0]
    assert raw == body
    assert headers["content-type"] == "application/json"
    assert headers[SIGNATURE_HEADER.lower()] == expected
    assert headers[WEBHOOK_ID_HEADER.lower()] == "wh-1"
    assert headers[SUBSCRIPTION_HEADER.lower()].startswith("P")


def test_an_escalated_webhook_moves_the_incident_a_level_up(
    fake: FakePagerDuty, events: pagerduty.EventsApiV2Client, account: Account
) -> None:
    key = events.trigger("Still broken", "cart-1")
    event = json.loads(fake.webhook_body("incident.escalated", key, None))["event"]
    assert event["agent"] is None
    assert [assignee["id"] for assignee in event["data"]["assignees"]] == [account.grace]
    assert fake.incidents[key].status == "triggered"
    with pytest.raises(ValueError, match="not a v3 incident event type"):
        fake.webhook_body("incident.exploded", key, None)
