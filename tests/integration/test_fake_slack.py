"""The fake Slack driven by the real slack_sdk clients over HTTP: methods, faults, the spec
check, signed requests towards the app, response URLs and Socket Mode."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from fakes.server import Served
from fakes.slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from fakes.slack_requests import (
    BOT_USER_ID,
    FORM,
    block_action_body,
    event_callback_body,
    event_callback_payload,
    sign,
    signed_headers,
    slash_command_body,
    slash_command_payload,
)
from fakes.slack_spec import SPECS_ENV
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import Clock as SignatureClock
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from orchestrator.clock import ManualClock

PEOPLE = [("alice", "alice@example.com"), ("bob", "bob@example.com")]
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SIGNED_AT = 1_795_000_000


@pytest.fixture
def fake(clock: ManualClock) -> FakeSlack:
    return FakeSlack(users=PEOPLE, clock=clock)


@pytest.fixture
def served(fake: FakeSlack) -> Iterator[Served]:
    with fake.running() as served:
        yield served


@pytest.fixture
def client(served: Served) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=f"{served.url}/api/")


@pytest.fixture
def spec_checked(fake: FakeSlack) -> FakeSlack:
    if fake.spec_check_skipped_reason:
        pytest.skip(fake.spec_check_skipped_reason)
    return fake


def error_of(raised: pytest.ExceptionInfo[SlackApiError]) -> Any:
    return raised.value.response["error"]


def user_id(fake: FakeSlack, name: str) -> str:
    return next(user.id for user in fake.users.values() if user.name == name)


async def test_auth_test_knows_the_bot_token_only(fake: FakeSlack, served: Served) -> None:
    url = f"{served.url}/api/"
    answer = await AsyncWebClient(token=BOT_TOKEN, base_url=url).auth_test()
    assert (answer["ok"], answer["user_id"]) == (True, BOT_USER_ID)
    for token, error in (("xoxb-stolen", "invalid_auth"), (None, "not_authed")):
        with pytest.raises(SlackApiError) as raised:
            await AsyncWebClient(token=token, base_url=url).auth_test()
        assert error_of(raised) == error
    assert [call.error for call in fake.calls_to("auth.test")] == [
        None,
        "invalid_auth",
        "not_authed",
    ]


async def test_create_channel_then_set_topic_and_purpose(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    created = await client.conversations_create(name="inc-42-orders-db")
    channel_id = created["channel"]["id"]
    assert channel_id.startswith("C")
    assert created["channel"]["is_member"] is True
    await client.conversations_setTopic(channel=channel_id, topic="SEV1: orders-db down")
    await client.conversations_setPurpose(channel=channel_id, purpose="Incident INC-42")
    info = await client.conversations_info(channel=channel_id, include_num_members=True)
    assert info["channel"]["topic"]["value"] == "SEV1: orders-db down"
    assert info["channel"]["purpose"]["value"] == "Incident INC-42"
    assert info["channel"]["num_members"] == 1
    assert fake.channels[channel_id].name == "inc-42-orders-db"
    assert fake.calls_to("conversations.create")[0].params == {"name": "inc-42-orders-db"}
    assert fake.violations == []


async def test_an_existing_name_is_taken(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("inc-1")
    with pytest.raises(SlackApiError) as raised:
        await client.conversations_create(name="inc-1")
    assert error_of(raised) == "name_taken"
    assert raised.value.response.status_code == 200
    assert [channel.name for channel in fake.channels.values()] == ["inc-1"]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("Inc-1", "invalid_name_specials"),
        ("inc 1", "invalid_name_specials"),
        ("x" * 81, "invalid_name_maxlength"),
        ("", "invalid_name_required"),
        ("--", "invalid_name_punctuation"),
    ],
)
async def test_invalid_channel_names_are_refused(
    fake: FakeSlack, client: AsyncWebClient, name: str, error: str
) -> None:
    with pytest.raises(SlackApiError) as raised:
        await client.conversations_create(name=name)
    assert error_of(raised) == error
    assert fake.channels == {}


async def test_invite_people_found_by_email_and_user_group(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    channel_id = (await client.conversations_create(name="inc-7"))["channel"]["id"]
    alice = (await client.users_lookupByEmail(email="alice@example.com"))["user"]["id"]
    await client.conversations_invite(channel=channel_id, users=[alice])
    group = fake.add_usergroup("db-oncall", [user_id(fake, "bob")])
    on_call = (await client.usergroups_users_list(usergroup=group))["users"]
    await client.conversations_invite(channel=channel_id, users=on_call)

    members = await client.conversations_members(channel=channel_id)
    assert members["members"] == [BOT_USER_ID, alice, user_id(fake, "bob")]
    assert (await client.users_info(user=alice))["user"]["profile"]["email"] == "alice@example.com"
    for call, error in (
        (client.users_lookupByEmail(email="nobody@example.com"), "users_not_found"),
        (client.conversations_invite(channel=channel_id, users=[alice]), "already_in_channel"),
        (client.conversations_invite(channel=channel_id, users="U0NOBODY"), "user_not_found"),
        (client.conversations_invite(channel="C0NOWHERE", users=[alice]), "channel_not_found"),
    ):
        with pytest.raises(SlackApiError) as raised:
            await call
        assert error_of(raised) == error
    assert len(fake.channels[channel_id].members) == 3
    assert fake.violations == []


async def test_post_reply_update_pin_bookmark_and_read_back(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    alice = user_id(fake, "alice")
    channel_id = fake.add_channel("inc-9", member_ids=[alice])
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*orders-db* is down"}}]
    posted = await client.chat_postMessage(channel="#inc-9", text="orders-db down", blocks=blocks)
    ts = posted["ts"]
    assert (posted["channel"], posted["message"]["blocks"]) == (channel_id, blocks)
    reply = await client.chat_postMessage(channel=channel_id, text="on it", thread_ts=ts)
    fake.post_as(alice, channel_id, "me too", thread_ts=ts)
    updated = await client.chat_update(channel=channel_id, ts=ts, text="orders-db recovered")
    assert updated["message"]["text"] == "orders-db recovered"
    await client.pins_add(channel=channel_id, timestamp=ts)
    bookmark = await client.bookmarks_add(
        channel_id=channel_id, title="Runbook", type="link", link="https://runbooks.example/db"
    )
    ephemeral = await client.chat_postEphemeral(channel=channel_id, user=alice, text="just you")
    fake.add_reaction(channel_id, ts, "eyes", alice)

    history = (await client.conversations_history(channel=channel_id))["messages"]
    assert [m["text"] for m in history] == ["orders-db recovered"]
    assert (history[0]["reply_count"], history[0]["pinned_to"]) == (2, [channel_id])
    assert history[0]["edited"]["user"] == BOT_USER_ID
    thread = (await client.conversations_replies(channel=channel_id, ts=ts))["messages"]
    assert [m["ts"] for m in thread][:2] == [ts, reply["ts"]]
    assert [m["text"] for m in thread] == ["orders-db recovered", "on it", "me too"]
    reactions = await client.reactions_get(channel=channel_id, timestamp=ts)
    assert reactions["message"]["reactions"] == [{"name": "eyes", "users": [alice], "count": 1}]
    assert bookmark["bookmark"]["link"] == "https://runbooks.example/db"
    assert [b.title for b in fake.bookmarks[channel_id]] == ["Runbook"]
    assert fake.ephemerals[0]["ts"] == ephemeral["message_ts"]
    assert fake.pins[channel_id] == [ts]
    for call, error in (
        (client.pins_add(channel=channel_id, timestamp=ts), "already_pinned"),
        (client.chat_postMessage(channel="#nowhere", text="lost"), "channel_not_found"),
        (client.chat_update(channel=channel_id, ts="1.000001", text="x"), "message_not_found"),
    ):
        with pytest.raises(SlackApiError) as raised:
            await call
        assert error_of(raised) == error
    assert fake.violations == []


def test_the_sync_web_client_works_too(fake: FakeSlack, served: Served) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=f"{served.url}/api/")
    channel_id = client.conversations_create(name="inc-sync")["channel"]["id"]
    blocks = [{"type": "divider"}]
    posted = client.chat_postMessage(channel=channel_id, text="from a thread", blocks=blocks)
    client.conversations_invite(channel=channel_id, users=[user_id(fake, "alice")])
    assert fake.messages[channel_id][0].blocks == blocks
    assert fake.messages[channel_id][0].ts == posted["ts"]
    assert len(fake.channels[channel_id].members) == 2
    assert fake.violations == []


async def test_an_injected_429_reaches_the_client_with_retry_after(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    channel_id = fake.add_channel("inc-3")
    fake.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel=channel_id, text="hello")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"
    assert error_of(raised) == "ratelimited"
    assert (await client.chat_postMessage(channel=channel_id, text="hello"))["ok"] is True


async def test_the_rate_limit_retry_handler_gets_through(fake: FakeSlack, served: Served) -> None:
    client = AsyncWebClient(
        token=BOT_TOKEN,
        base_url=f"{served.url}/api/",
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fake.fail_next("conversations.create", status=429, retry_after=1)
    created = await client.conversations_create(name="inc-retried")
    assert created["channel"]["name"] == "inc-retried"
    assert [call.status for call in fake.calls_to("conversations.create")] == [429, 200]


async def test_a_tier_limit_slides_with_the_clock(
    fake: FakeSlack, client: AsyncWebClient, clock: ManualClock
) -> None:
    fake.rate_limit("conversations.create", 2)
    await client.conversations_create(name="inc-a")
    await client.conversations_create(name="inc-b")
    waits = []
    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            await client.conversations_create(name="inc-c")
        assert raised.value.response.status_code == 429
        waits.append(raised.value.response.headers["Retry-After"])
        clock.advance(59)
    assert waits == ["60", "1"]
    clock.advance(1)
    assert (await client.conversations_create(name="inc-c"))["channel"]["name"] == "inc-c"


async def test_an_outage_answers_503_until_lifted(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.outage(True)
    for call in (client.auth_test(), client.conversations_create(name="inc-down")):
        with pytest.raises(SlackApiError) as raised:
            await call
        assert raised.value.response.status_code == 503
    fake.outage(False)
    assert (await client.conversations_create(name="inc-down"))["ok"] is True
    assert [call.status for call in fake.calls] == [503, 503, 200]


async def test_an_injected_error_fails_the_given_number_of_calls(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.fail_next("conversations.create", error="restricted_action", times=2)
    errors = []
    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            await client.conversations_create(name="inc-x")
        errors.append((raised.value.response.status_code, error_of(raised)))
    assert errors == [(200, "restricted_action")] * 2
    assert (await client.conversations_create(name="inc-x"))["ok"] is True


async def test_a_delay_slows_every_answer(fake: FakeSlack, client: AsyncWebClient) -> None:
    loop = asyncio.get_running_loop()
    fake.delay(0.3)
    started = loop.time()
    await client.auth_test()
    assert loop.time() - started >= 0.3
    fake.delay(0)
    started = loop.time()
    await client.auth_test()
    assert loop.time() - started < 0.3


async def test_the_spec_check_catches_a_missing_required_argument(
    spec_checked: FakeSlack, client: AsyncWebClient
) -> None:
    with pytest.raises(SlackApiError) as raised:
        await client.api_call("chat.postMessage", json={"text": "where to?"})
    assert error_of(raised) == "invalid_arguments"
    messages = raised.value.response["response_metadata"]["messages"]
    assert messages == ["[ERROR] missing required field: channel"]
    assert spec_checked.violations == ["chat.postMessage: [ERROR] missing required field: channel"]


async def test_the_spec_check_catches_an_unknown_argument(
    spec_checked: FakeSlack, client: AsyncWebClient
) -> None:
    channel_id = spec_checked.add_channel("inc-spec")
    with pytest.raises(SlackApiError) as raised:
        await client.api_call(
            "conversations.setTopic",
            params={"channel": channel_id, "topic": "t", "colour": "red"},
        )
    assert error_of(raised) == "invalid_arguments"
    assert spec_checked.violations == ["conversations.setTopic: [ERROR] unknown field: colour"]
    assert spec_checked.channels[channel_id].topic == ""


def test_methods_missing_from_the_old_spec_pass_unchecked(spec_checked: FakeSlack) -> None:
    assert "chat.postMessage" in spec_checked.spec
    assert "bookmarks.add" not in spec_checked.spec
    assert spec_checked.spec.check("bookmarks.add", {"anything": "goes"}) == []


async def test_without_the_spec_folder_the_check_is_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "vendor-specs"
    monkeypatch.setenv(SPECS_ENV, str(missing))
    fake = FakeSlack()
    assert fake.spec_check_skipped_reason is not None
    assert str(missing) in fake.spec_check_skipped_reason
    with fake.running() as served:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=f"{served.url}/api/")
        await client.api_call("conversations.create", params={"name": "inc-1", "colour": "red"})
    assert fake.violations == []


class FixedClock(SignatureClock):
    def now(self) -> float:
        return float(SIGNED_AT)


def test_signed_requests_pass_slack_sdks_verifier() -> None:
    body = slash_command_body("/incident", "ack INC-1", "U0ALICE", "C0INC")
    headers = signed_headers(body, timestamp=SIGNED_AT, secret=SECRET, content_type=FORM)
    verifier = SignatureVerifier(SECRET, clock=FixedClock())
    timestamp, signature = headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    assert signature.startswith("v0=")
    assert verifier.is_valid(body, timestamp, signature)
    assert not verifier.is_valid(body + b"&text=tampered", timestamp, signature)
    assert not verifier.is_valid(body, timestamp, sign(body, SIGNED_AT, "another-secret"))


def test_request_bodies_have_slacks_shapes() -> None:
    body = slash_command_body(
        "/incident", "ack INC-1", "U0ALICE", "C0INC", response_url="http://r/1"
    )
    command = parse_qs(body.decode())
    assert {k: v[0] for k, v in command.items() if k in ("command", "text", "response_url")} == {
        "command": "/incident",
        "text": "ack INC-1",
        "response_url": "http://r/1",
    }
    clicked = parse_qs(
        block_action_body("ack", "INC-1", "U0ALICE", "C0INC", "1700000000.000100").decode()
    )
    payload = json.loads(clicked["payload"][0])
    assert (payload["type"], payload["user"]["id"], payload["channel"]["id"]) == (
        "block_actions",
        "U0ALICE",
        "C0INC",
    )
    assert payload["actions"][0] | {"action_ts": ""} == {
        "type": "button",
        "action_id": "ack",
        "block_id": "actions",
        "value": "INC-1",
        "action_ts": "",
    }
    assert payload["container"]["message_ts"] == "1700000000.000100"
    event = {"type": "pin_added", "user": "U0ALICE", "channel_id": "C0INC", "event_ts": "17.0"}
    callback = json.loads(event_callback_body(event, event_id="Ev1"))
    assert (callback["type"], callback["event"], callback["event_id"]) == (
        "event_callback",
        event,
        "Ev1",
    )
    assert callback["event_time"] == 17


async def test_the_response_url_records_what_the_app_posts(fake: FakeSlack, served: Served) -> None:
    url = fake.new_response_url()
    answer = await AsyncWebhookClient(url).send(text="Acknowledged", response_type="ephemeral")
    assert (answer.status_code, answer.body) == (200, "ok")
    assert fake.responses_at(url) == [{"text": "Acknowledged", "response_type": "ephemeral"}]
    assert fake.responses_at(fake.new_response_url()) == []


async def test_socket_mode_pushes_envelopes_and_collects_acks(
    fake: FakeSlack, served: Served
) -> None:
    web = AsyncWebClient(base_url=f"{served.url}/api/")
    client = SocketModeClient(app_token=APP_TOKEN, web_client=web, auto_reconnect_enabled=False)
    hello = asyncio.Event()
    requests: list[SocketModeRequest] = []

    async def on_message(_: AsyncBaseSocketModeClient, message: dict[str, Any], __: Any) -> None:
        if message.get("type") == "hello":
            hello.set()

    async def on_request(socket: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        requests.append(request)
        answer = {"text": "acknowledged"} if request.type == "slash_commands" else None
        await socket.send_socket_mode_response(SocketModeResponse(request.envelope_id, answer))

    client.message_listeners.append(on_message)
    client.socket_mode_request_listeners.append(on_request)
    command = slash_command_payload("/incident", "ack INC-1", "U0ALICE", "C0INC")
    event = event_callback_payload({"type": "reaction_added", "reaction": "eyes"})
    try:
        # slack_sdk leaves these coroutines unannotated.
        await client.connect()  # type: ignore[no-untyped-call]
        await asyncio.wait_for(hello.wait(), 5)
        command_id = fake.push_envelope("slash_commands", command)
        command_ack = await fake.wait_ack(command_id, timeout=5)
        event_id = fake.push_envelope("events_api", event)
        event_ack = await fake.wait_ack(event_id, timeout=5)
    finally:
        await client.close()  # type: ignore[no-untyped-call]
    assert command_ack == {"envelope_id": command_id, "payload": {"text": "acknowledged"}}
    assert event_ack == {"envelope_id": event_id}
    assert [(r.type, r.accepts_response_payload, r.payload) for r in requests] == [
        ("slash_commands", True, command),
        ("events_api", False, event),
    ]
    assert fake.calls_to("apps.connections.open")[0].token == APP_TOKEN


async def test_socket_mode_wants_the_app_token(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        await client.apps_connections_open(app_token=BOT_TOKEN)
    assert error_of(raised) == "not_allowed_token_type"
