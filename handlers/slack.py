"""The Slack handler: opens incident channels, posts to them and keeps their pinned summary
current, answering every vendor error with a result the dispatcher can act on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from opentelemetry.trace import Tracer
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from handlers.client_spans import aiohttp_tracing
from handlers.slack_blocks import is_drill, summary_blocks, summary_text, with_banner
from handlers.slack_channel import OPEN_CHANNEL, ChannelOpener
from handlers.slack_errors import SlackCallError, call
from handlers.slack_naming import CreationPace
from handlers.slack_people import OncallEmails
from orchestrator.actions import Action, ActionResult
from orchestrator.clock import Clock, SystemClock

POST = "slack.post"
UPDATE_SUMMARY = "slack.update_summary"
HANDLES = frozenset({OPEN_CHANNEL, POST, UPDATE_SUMMARY})
DEFAULT_BASE_URL = "https://slack.com/api/"
PLAYBOOK_BROADCAST = "#incidents"  # what the shipped playbooks call the broadcast channel
# Seconds per Web API call: well inside the dispatcher's per-attempt timeout, which covers the
# dozen calls of opening a channel.
REQUEST_TIMEOUT = 10


class SlackHandler:
    """Delivers slack.open_channel, slack.post and slack.update_summary.

    Retries belong to the dispatcher: slack_sdk's own retries are limited to one reconnect
    after a dropped connection, and a 429 comes back at once as a retryable failure carrying
    Retry-After, so a throttled action waits in the outbox rather than in this process.
    `broadcast_channel` is where playbooks' posts to `#incidents` go, for workspaces whose
    broadcast channel has another name. Each HTTP request is a client span under the delivery's,
    through `tracer` (the global one by default)."""

    name = "slack"

    def __init__(
        self,
        token: str,
        *,
        base_url: str | None = None,
        oncall_emails: OncallEmails | None = None,
        broadcast_channel: str = PLAYBOOK_BROADCAST,
        channel_creations_per_minute: int = 20,
        clock: Clock | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        if not token:
            raise ValueError("the Slack bot token must not be empty")
        url = base_url or DEFAULT_BASE_URL
        self._client = AsyncWebClient(
            token=token,
            base_url=url if url.endswith("/") else f"{url}/",
            timeout=REQUEST_TIMEOUT,
            retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=1)],
        )
        self._broadcast = broadcast_channel or PLAYBOOK_BROADCAST
        self._tracer = tracer
        pace = CreationPace(channel_creations_per_minute, clock or SystemClock())
        self._channels = ChannelOpener(self._client, pace, oncall_emails)

    def __repr__(self) -> str:
        return f"SlackHandler(base_url={self._client.base_url!r})"  # never the token

    @property
    def handles(self) -> frozenset[str]:
        return HANDLES

    async def deliver(self, action: Action) -> ActionResult:
        self._open_session()
        try:
            if action.name == OPEN_CHANNEL:
                return await self._channels.open(action)
            if action.name == POST:
                return await self._post(action)
            if action.name == UPDATE_SUMMARY:
                return await self._update_summary(action)
        except SlackCallError as err:
            return err.result()
        return ActionResult.failure(f"the Slack handler does not deliver {action.name}")

    async def check(self) -> list[tuple[bool, str]]:
        """The connection, tested for `orchestrator config check`: auth.test with the token."""
        self._open_session()
        try:
            answer = await call("auth.test", self._client.auth_test())
        except SlackCallError as err:
            return [(False, f"Slack at {self._client.base_url}: {err}")]
        return [(True, f"Slack: signed in to {answer.get('team')} as {answer.get('user')}")]

    async def close(self) -> None:
        session = self._client.session
        self._client.session = None
        if session is not None and not session.closed:
            await session.close()

    def _open_session(self) -> None:
        # One pooled session for every call, created on the running loop (aiohttp requires it).
        # Slack's paths name its Web API methods, a small fixed set: fit for span names.
        session = self._client.session
        if session is None or session.closed:
            tracing = aiohttp_tracing("slack", tracer=self._tracer, name_by_path=True)
            self._client.session = aiohttp.ClientSession(trace_configs=[tracing])

    async def _post(self, action: Action) -> ActionResult:
        incident: Mapping[str, Any] = action.params.get("incident") or {}
        target = str(action.params.get("channel") or "")
        if target == PLAYBOOK_BROADCAST:
            target = self._broadcast
        if not target:
            target = str(action.latest_result(OPEN_CHANNEL, "channel_id") or "")
        if not target:
            return ActionResult.failure("the incident has no Slack channel")
        text = str(action.params.get("text") or "")
        if not text.strip():
            return ActionResult.failure("slack.post has no text to post")
        thread_ts = _thread_of(action, target) if action.params.get("thread") else None
        posted = await call(
            "chat.postMessage",
            self._client.chat_postMessage(
                channel=target,
                text=with_banner(text, is_drill(incident, action.is_drill)),
                thread_ts=thread_ts,
            ),
        )
        channel = str(posted.get("channel") or target)
        return ActionResult.success(
            f"posted to {target}", channel=channel, target=target, ts=str(posted["ts"])
        )

    async def _update_summary(self, action: Action) -> ActionResult:
        channel_id = action.latest_result(OPEN_CHANNEL, "channel_id")
        ts = action.latest_result(OPEN_CHANNEL, "summary_ts")
        if not channel_id:
            return ActionResult.success("no incident channel to update")
        if not ts:
            return ActionResult.success("the incident channel has no pinned summary to update")
        incident: Mapping[str, Any] = action.params.get("incident") or {}
        drill = is_drill(incident, action.is_drill)
        await call(
            "chat.update",
            self._client.chat_update(
                channel=str(channel_id),
                ts=str(ts),
                text=summary_text(incident, drill),
                blocks=summary_blocks(incident, drill),
            ),
        )
        return ActionResult.success("summary updated", channel=str(channel_id), ts=str(ts))


def _thread_of(action: Action, target: str) -> str | None:
    """This incident's first message in `target`: the pinned summary in its own channel, else
    its first post there (an announcement in #incidents). None starts a new thread."""
    for delivered in action.history:
        result = delivered.result
        if delivered.name == OPEN_CHANNEL and result.get("channel_id") == target:
            return str(result.get("summary_ts") or "") or None
        if delivered.name == "slack.post" and target in (
            result.get("target"),
            result.get("channel"),
        ):
            return str(result.get("ts") or "") or None
    return None
