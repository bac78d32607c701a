"""Every HTTP request to Slack or PagerDuty is a CLIENT span under the delivery that made it, with
the request's method, server and status, an ERROR status when it failed, and never a secret."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fakes.pagerduty import FakePagerDuty
from fakes.server import Served, serve
from fakes.slack import BOT_TOKEN, FakeSlack
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from samples import db_alert, free_port

from handlers.pagerduty import PagerDutyHandler, PagerDutyService
from handlers.slack import SlackHandler
from orchestrator.actions import Action, ActionResult
from orchestrator.app import route_handlers
from orchestrator.clock import ManualClock
from orchestrator.dispatcher import Dispatcher
from orchestrator.instruments import SPAN_DELIVER, Instruments
from orchestrator.pipeline import Pipeline
from orchestrator.store.sql import SqlStore

ROUTING_KEY = "0123456789abcdef0123456789abcdef"
PD_TOKEN = "y_NbAkKc66ryYTWUXYEu"
SECRETS = (BOT_TOKEN, ROUTING_KEY, PD_TOKEN)
ENQUEUE = "/v2/enqueue"


class Traces:
    """A real SDK tracer whose finished spans stay in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer: Tracer = provider.get_tracer("tests")

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def client_spans(self, under: ReadableSpan | None = None) -> list[ReadableSpan]:
        return [
            span
            for span in self.spans()
            if span.kind is SpanKind.CLIENT
            and (under is None or (span.parent and span.parent.span_id == under.context.span_id))
        ]

    def the_span(self, name: str) -> ReadableSpan:
        (span,) = [s for s in self.spans() if s.name == name]
        return span

    async def deliver_once(
        self, handler: SlackHandler | PagerDutyHandler, action: Action
    ) -> ActionResult:
        """`action` delivered by `handler` in a span named "delivery"; the handler closed."""
        try:
            with self.tracer.start_as_current_span("delivery"):
                return await handler.deliver(action)
        finally:
            await handler.close()


def attributes(span: ReadableSpan) -> Mapping[str, Any]:
    assert span.attributes is not None
    return span.attributes


def method_path_status(span: ReadableSpan) -> tuple[str, str, Any]:
    seen = attributes(span)
    path = urlsplit(str(seen["url.full"])).path
    return str(seen["http.request.method"]), path, seen.get("http.response.status_code")


def assert_no_secrets(spans: list[ReadableSpan]) -> None:
    for span in spans:
        for value in attributes(span).values():
            assert not any(secret in str(value) for secret in SECRETS), (span.name, value)


@pytest.fixture
def traces() -> Traces:
    return Traces()


@pytest.fixture
def slack(clock: ManualClock) -> Iterator[FakeSlack]:
    fake = FakeSlack(users=[("ada", "ada@example.com")], clock=clock)
    fake.add_usergroup("data-eng", [next(iter(fake.users))])
    yield fake
    assert fake.violations == []


@pytest.fixture
def slack_served(slack: FakeSlack) -> Iterator[Served]:
    with slack.running() as served:
        yield served


@pytest.fixture
def pagerduty(clock: ManualClock) -> Iterator[FakePagerDuty]:
    fake = FakePagerDuty(
        routing_keys={ROUTING_KEY: "Data on-call"}, api_token=PD_TOKEN, clock=clock
    )
    yield fake
    assert fake.violations == []


@pytest.fixture
def policy(pagerduty: FakePagerDuty) -> str:
    policy = pagerduty.add_escalation_policy("Data", service_ids=(next(iter(pagerduty.services)),))
    pagerduty.set_oncall(policy, 1, pagerduty.add_user("Ada Lovelace", "ada@example.com"))
    return policy


@pytest.fixture
def pagerduty_served(pagerduty: FakePagerDuty, policy: str, tmp_path: Path) -> Iterator[Served]:
    with serve(pagerduty.app, tls_dir=tmp_path) as served:
        yield served


async def ada_is_on_call(_incident: Mapping[str, Any]) -> list[str]:
    return ["ada@example.com"]


def slack_handler(served: Served, clock: ManualClock, tracer: Tracer) -> SlackHandler:
    return SlackHandler(
        BOT_TOKEN,
        base_url=f"{served.url}/api/",
        oncall_emails=ada_is_on_call,
        clock=clock,
        tracer=tracer,
    )


def pagerduty_handler(
    events_url: str, served: Served | None, policy: str | None, tracer: Tracer
) -> PagerDutyHandler:
    rest: dict[str, Any] = {}
    if served is not None:
        rest = {"api_token": PD_TOKEN, "rest_url": served.url, "verify": served.ssl_context()}
    services = {"data-oncall": PagerDutyService(ROUTING_KEY, policy)}
    return PagerDutyHandler(services, events_url=events_url, tracer=tracer, **rest)


def trigger() -> Action:
    incident = {"number": 7, "title": "orders-db: database unavailable", "severity": "SEV1"}
    params = {"service": "data-oncall", "urgency": "high", "incident": incident}
    return Action("7:0:trigger:0", "pagerduty.trigger", params, incident_number=7)


async def test_each_vendor_request_is_a_client_span_under_its_delivery(
    traces: Traces,
    store: SqlStore,
    pipeline: Pipeline,
    clock: ManualClock,
    slack: FakeSlack,
    slack_served: Served,
    pagerduty: FakePagerDuty,
    pagerduty_served: Served,
    policy: str,
) -> None:
    chat = slack_handler(slack_served, clock, traces.tracer)
    paging = pagerduty_handler(pagerduty_served.url, pagerduty_served, policy, traces.tracer)
    instruments = Instruments.of(tracer=traces.tracer)
    dispatcher = Dispatcher(store, route_handlers([chat, paging]), clock, instruments=instruments)
    try:
        await pipeline.ingest_bytes(db_alert(starts_at=clock.now()), "test")
        await dispatcher.drain()
    finally:
        await chat.close()
        await paging.close()

    deliveries = {str(attributes(s)["action"]): s for s in traces.spans() if s.name == SPAN_DELIVER}
    assert set(deliveries) == {"pagerduty.trigger", "slack.open_channel", "slack.post"}
    # The page: the event, then who is on call and which incident it opened, over REST.
    paged = traces.client_spans(under=deliveries["pagerduty.trigger"])
    assert [method_path_status(s) for s in paged] == [
        (r.method, r.path, r.status) for r in pagerduty.requests
    ]
    assert [s.name for s in paged] == ["POST", "GET", "GET"]
    # The channel and the post: one span per Web API call, named by its method.
    chatted = [
        span
        for action in ("slack.open_channel", "slack.post")
        for span in traces.client_spans(under=deliveries[action])
    ]
    assert [method_path_status(s)[1:] for s in chatted] == [
        (f"/api/{call.method}", call.status) for call in slack.calls
    ]
    for span in chatted:
        method, path, _ = method_path_status(span)
        assert span.name == f"{method} {path}"
        assert attributes(span)["url.template"] == path
    assert len(traces.client_spans()) == len(paged) + len(chatted)

    for span, peer, served in [
        *((s, "pagerduty", pagerduty_served) for s in paged),
        *((s, "slack", slack_served) for s in chatted),
    ]:
        seen = attributes(span)
        assert span.status.status_code is StatusCode.UNSET
        assert seen["peer.service"] == peer
        assert (seen["server.address"], seen["server.port"]) == (
            "127.0.0.1",
            urlsplit(served.url).port,
        )
        assert str(seen["url.full"]).startswith(served.url)
        assert "error.type" not in seen
    assert_no_secrets(traces.spans())


async def test_query_values_are_redacted_from_url_full(
    traces: Traces, slack: FakeSlack, slack_served: Served, clock: ManualClock
) -> None:
    chat = slack_handler(slack_served, clock, traces.tracer)
    invite = {"name": "inc-1", "topic": "orders-db", "invite": ["oncall"]}
    incident = {"number": 1, "title": "orders-db down", "severity": "SEV1", "service": "orders-db"}
    try:
        opened = await chat.deliver(
            Action("1:0:trigger:1", "slack.open_channel", {**invite, "incident": incident}, 1)
        )
    finally:
        await chat.close()
    assert opened.ok, opened.detail

    # slack_sdk sends this one as a GET, with the email in the query string.
    (lookup,) = [s for s in traces.client_spans() if s.name == "GET /api/users.lookupByEmail"]
    url = f"{slack_served.url}/api/users.lookupByEmail?email=REDACTED"
    assert attributes(lookup)["url.full"] == url
    assert all("example.com" not in str(v) for s in traces.spans() for v in attributes(s).values())


async def test_a_rate_limited_slack_call_is_an_error_span(
    traces: Traces, slack: FakeSlack, slack_served: Served, clock: ManualClock
) -> None:
    chat = slack_handler(slack_served, clock, traces.tracer)
    slack.fail_next("chat.postMessage", status=429, retry_after=7)
    post = {"channel": "C0INC1", "text": "on it", "incident": {"number": 1}}
    posted = await traces.deliver_once(chat, Action("1:0:trigger:2", "slack.post", post, 1))
    assert (posted.ok, posted.retryable) == (False, True)

    (span,) = traces.client_spans(under=traces.the_span("delivery"))
    assert span.name == "POST /api/chat.postMessage"
    assert span.status.status_code is StatusCode.ERROR
    assert attributes(span)["http.response.status_code"] == 429
    assert attributes(span)["error.type"] == "429"
    assert_no_secrets(traces.spans())


@pytest.mark.parametrize(("path", "status"), [(ENQUEUE, 429), ("/oncalls", 500)])
async def test_a_pagerduty_error_status_is_an_error_span(
    traces: Traces,
    pagerduty: FakePagerDuty,
    pagerduty_served: Served,
    policy: str,
    path: str,
    status: int,
) -> None:
    paging = pagerduty_handler(pagerduty_served.url, pagerduty_served, policy, traces.tracer)
    pagerduty.fail_next(path, status=status, times=5)
    await traces.deliver_once(paging, trigger())

    spans = traces.client_spans(under=traces.the_span("delivery"))
    assert [method_path_status(s) for s in spans] == [
        (r.method, r.path, r.status) for r in pagerduty.requests
    ]
    (failed,) = [s for s in spans if s.status.status_code is StatusCode.ERROR]
    assert method_path_status(failed)[1:] == (path, status)
    assert attributes(failed)["error.type"] == str(status)
    assert all("error.type" not in attributes(s) for s in spans if s is not failed)
    assert_no_secrets(traces.spans())


async def test_an_unreachable_pagerduty_is_an_error_span_naming_the_exception(
    traces: Traces,
) -> None:
    nowhere = f"https://127.0.0.1:{free_port()}"
    paging = pagerduty_handler(nowhere, None, None, traces.tracer)
    result = await traces.deliver_once(paging, trigger())
    assert (result.ok, result.retryable) == (False, True)

    (span,) = traces.client_spans(under=traces.the_span("delivery"))
    assert span.name == "POST"
    assert span.status.status_code is StatusCode.ERROR
    assert attributes(span)["error.type"] == "ConnectError"
    assert "http.response.status_code" not in attributes(span)
    assert span.events == ()  # no exception event: its message could echo the request
    assert_no_secrets(traces.spans())
