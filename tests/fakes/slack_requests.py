"""Builds and signs the requests Slack sends to an app: slash commands, interactions and events.

The payload builders return the dict Socket Mode carries in an envelope; the `*_body` builders
encode the same dict the way Slack posts it over HTTP, ready for `signed_headers`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any
from urllib.parse import urlencode

TEAM_ID = "T0FAKE0001"
TEAM_DOMAIN = "fake-workspace"
APP_ID = "A0FAKE0001"
BOT_USER_ID = "U0FAKEBOT1"
BOT_ID = "B0FAKEBOT1"
# Slack still sends the deprecated verification token; apps should ignore it and verify the
# signature instead, so a fixed value is enough.
VERIFICATION_TOKEN = "fake-verification-token"
DEFAULT_RESPONSE_URL = "https://hooks.slack.com/commands/T0FAKE0001/1/fake"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def sign(body: bytes, timestamp: int, secret: str) -> str:
    """Slack's request signature: `v0=` and the HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    body: bytes, *, timestamp: int, secret: str, content_type: str
) -> dict[str, str]:
    """The headers Slack sends with `body`; the timestamp is the caller's, as tests own time."""
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": sign(body, timestamp, secret),
    }


def _trigger_id() -> str:
    return f"1.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"


def slash_command_payload(
    command: str,
    text: str,
    user_id: str,
    channel_id: str,
    *,
    response_url: str = DEFAULT_RESPONSE_URL,
    user_name: str = "someone",
    channel_name: str = "incidents",
) -> dict[str, str]:
    """The fields of a slash command invocation, all strings as in Slack's form post."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": _trigger_id(),
    }


def slash_command_body(
    command: str,
    text: str,
    user_id: str,
    channel_id: str,
    *,
    response_url: str = DEFAULT_RESPONSE_URL,
    user_name: str = "someone",
    channel_name: str = "incidents",
) -> bytes:
    """A slash command form-encoded as Slack posts it to the app's request URL."""
    payload = slash_command_payload(
        command,
        text,
        user_id,
        channel_id,
        response_url=response_url,
        user_name=user_name,
        channel_name=channel_name,
    )
    return urlencode(payload).encode()


def block_action_payload(
    action_id: str,
    value: str,
    user_id: str,
    channel_id: str,
    message_ts: str,
    *,
    block_id: str = "actions",
    response_url: str = DEFAULT_RESPONSE_URL,
) -> dict[str, Any]:
    """A `block_actions` interaction: one button with `value` clicked on the message."""
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": "someone", "name": "someone", "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": _trigger_id(),
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "channel": {"id": channel_id, "name": "incidents"},
        "message": {"type": "message", "ts": message_ts, "text": ""},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "action_ts": message_ts,
            }
        ],
    }


def block_action_body(
    action_id: str,
    value: str,
    user_id: str,
    channel_id: str,
    message_ts: str,
    *,
    block_id: str = "actions",
    response_url: str = DEFAULT_RESPONSE_URL,
) -> bytes:
    """A button click as Slack posts it: a form with one `payload` field holding JSON."""
    payload = block_action_payload(
        action_id,
        value,
        user_id,
        channel_id,
        message_ts,
        block_id=block_id,
        response_url=response_url,
    )
    return urlencode({"payload": json.dumps(payload)}).encode()


def event_callback_payload(
    event: dict[str, Any], *, event_id: str | None = None, event_time: int | None = None
) -> dict[str, Any]:
    """The Events API wrapper around `event` (e.g. `reaction_added`, `pin_added`)."""
    if event_time is None:
        event_time = int(float(event.get("event_ts", 0)))
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": event_time,
        "authorizations": [
            {
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def event_callback_body(
    event: dict[str, Any], *, event_id: str | None = None, event_time: int | None = None
) -> bytes:
    """An Events API callback as Slack posts it: a JSON body."""
    return json.dumps(
        event_callback_payload(event, event_id=event_id, event_time=event_time)
    ).encode()
