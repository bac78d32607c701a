"""The service's logs: JSON lines with the trace they happened in, and no secret ever, however
it got into a record."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from orchestrator.logs import MASK, configure_logging
from orchestrator.settings import Settings

TOKEN = "xoxb-1234567890-secret-bot-token"
ROUTING_KEY = "R0UTINGKEYDATA000000000000000001"
PASSWORD = "pg-pass-w0rd"


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("ORCH_DATABASE_URL", "ORCH_PLAYBOOKS_DIR"):
        monkeypatch.delenv(name, raising=False)
    return Settings(
        database_url=f"postgresql+asyncpg://orchestrator:{PASSWORD}@db.internal/orchestrator",
        slack_bot_token=TOKEN,
        pagerduty_services={"data-oncall": {"routing_key": ROUTING_KEY}},
        log_format="json",
    )


@pytest.fixture
def captured(settings: Settings) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    configure_logging(json=True, secrets=settings.secret_values(), stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in before[0]:
            root.addHandler(handler)
        root.setLevel(before[1])


def lines(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_secret_the_settings_hold_is_known(settings: Settings) -> None:
    assert set(settings.secret_values()) == {TOKEN, ROUTING_KEY, PASSWORD}


def test_secrets_are_masked_wherever_they_turn_up(captured: io.StringIO) -> None:
    library = logging.getLogger("slack_sdk.web.base_client")
    library.warning("POST with Authorization: Bearer %s failed", TOKEN)
    logging.getLogger("handlers.pagerduty").error(f"event for key {ROUTING_KEY} refused")
    try:
        raise ConnectionError(f"password authentication failed: {PASSWORD}")
    except ConnectionError:
        logging.getLogger("orchestrator.service").exception("store check failed")
    text = captured.getvalue()
    for secret in (TOKEN, ROUTING_KEY, PASSWORD):
        assert secret not in text
    found = lines(captured)
    assert found[0]["message"] == f"POST with Authorization: Bearer {MASK} failed"
    assert found[1]["message"] == f"event for key {MASK} refused"
    assert found[2]["level"] == "error"
    assert f"password authentication failed: {MASK}" in found[2]["exception"]


def test_a_line_carries_the_trace_it_happened_in(captured: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer(__name__)
    with tracer.start_as_current_span("deliver slack.post") as span:
        logging.getLogger("orchestrator.dispatcher").info("delivered")
    logging.getLogger("orchestrator.dispatcher").info("outside")
    inside, outside = lines(captured)
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in outside
    assert inside["logger"] == "orchestrator.dispatcher"
    assert inside["time"].endswith("+00:00")
