"""A stateful fake of Slack's Web API, served over real HTTP so slack_sdk clients run unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from fakes.server import Served, serve
from fakes.slack_conversations import METHODS as CONVERSATION_METHODS
from fakes.slack_methods import METHODS as OTHER_METHODS
from fakes.slack_requests import APP_ID, BOT_USER_ID
from fakes.slack_socket import SocketModeHub
from fakes.slack_spec import Args, Json, SlackError, SlackSpec, decode_body, load_spec
from fakes.slack_state import (
    Bookmark,
    Call,
    Channel,
    Fault,
    Message,
    Method,
    User,
    UserGroup,
    message_json,
)
from orchestrator.clock import Clock, SystemClock

BOT_TOKEN = "xoxb-fake-bot-token"
APP_TOKEN = "xapp-1-fake-app-token"
FAULT_ERRORS = {429: "ratelimited", 503: "service_unavailable"}
METHODS: dict[str, Method] = {**CONVERSATION_METHODS, **OTHER_METHODS}
# Re-exported: tests inspect the fake's records through these types.
__all__ = [
    "APP_TOKEN",
    "BOT_TOKEN",
    "Bookmark",
    "Call",
    "Channel",
    "FakeSlack",
    "Message",
    "User",
    "UserGroup",
]


class FakeSlack:
    """Slack's Web API state and behaviour for one test; serve `.app` or use `running()`."""

    def __init__(
        self,
        *,
        users: Iterable[tuple[str, str]] = (),
        bot_token: str = BOT_TOKEN,
        app_token: str = APP_TOKEN,
        spec: SlackSpec | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.bot_token, self.app_token = bot_token, app_token
        self.spec = spec if spec is not None else load_spec()
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.users: dict[str, User] = {}
        self.usergroups: dict[str, UserGroup] = {}
        self.channels: dict[str, Channel] = {}
        self.messages: dict[str, list[Message]] = {}
        self.pins: dict[str, list[str]] = {}
        self.bookmarks: dict[str, list[Bookmark]] = {}
        self.ephemerals: list[Json] = []
        self.responses: dict[str, list[Any]] = {}
        self.socket_mode = SocketModeHub(APP_ID)
        self.base_url = ""
        self.clock: Clock = clock or SystemClock()
        self._ids = itertools.count(1)
        self._faults: dict[str, deque[Fault]] = {}
        self._limits: dict[str, int] = {}
        self._windows: dict[str, deque[float]] = {}
        self._outage = False
        self._delay = 0.0
        self.users[BOT_USER_ID] = User(BOT_USER_ID, "orchestrator", "orchestrator@example.com")
        for name, email in users:
            self.add_user(name, email)
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/response/{response_id}", self._response_url, methods=["POST"]),
            ]
        )

    @property
    def spec_check_skipped_reason(self) -> str | None:
        """Why requests are not checked against Slack's spec, or None when they are."""
        return self.spec.skipped_reason

    # -- state set up by tests ---------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def new_ts(self) -> str:
        # Seconds from the clock, and a sequence so two messages in one second still differ.
        return f"{int(self.now())}.{next(self._ids):06d}"

    def add_user(self, name: str, email: str) -> str:
        user = User(self.new_id("U"), name, email)
        self.users[user.id] = user
        return user.id

    def add_usergroup(self, handle: str, member_ids: Iterable[str]) -> str:
        group = UserGroup(self.new_id("S"), handle, list(member_ids))
        self.usergroups[group.id] = group
        return group.id

    def add_channel(
        self, name: str, *, member_ids: Iterable[str] = (), private: bool = False
    ) -> str:
        """A channel that already exists, with the bot in it."""
        channel = Channel(
            self.new_id("C"),
            name,
            int(self.now()),
            [BOT_USER_ID, *member_ids],
            is_private=private,
        )
        self.channels[channel.id] = channel
        self.messages[channel.id] = []
        return channel.id

    def channel_named(self, name: str) -> Channel | None:
        return next((c for c in self.channels.values() if c.name == name.lstrip("#")), None)

    def post_as(
        self, user_id: str, channel_id: str, text: str, *, thread_ts: str | None = None
    ) -> str:
        """A person posting in a channel (or a thread); returns the message's ts."""
        message = Message(self.new_ts(), text, user_id, thread_ts=thread_ts)
        self.messages[channel_id].append(message)
        return message.ts

    def add_reaction(self, channel_id: str, ts: str, name: str, user_id: str) -> None:
        self.lookup_message(self.channels[channel_id], ts).reactions.setdefault(name, []).append(
            user_id
        )

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    # -- faults --------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        error: str | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `method` fail: `ok: false` with `error` on HTTP 200, or
        HTTP `status` (a 429 always carries Retry-After, 1 second unless given)."""
        if error is None and status is None:
            raise ValueError("fail_next needs an error, a status or both")
        status = status or 200
        error = error or FAULT_ERRORS.get(status, "internal_error")
        if status == 429 and retry_after is None:
            retry_after = 1
        fault = Fault(error, status, retry_after, times)
        self._faults.setdefault(method, deque()).append(fault)

    def outage(self, on: bool) -> None:
        """While on, every Web API method answers HTTP 503."""
        self._outage = on

    def delay(self, seconds: float) -> None:
        """Every Web API answer waits `seconds` first (0 to stop)."""
        self._delay = seconds

    def rate_limit(self, method: str, per_minute: int | None) -> None:
        """Slack's tier limits: past `per_minute` calls in a sliding minute, `method` answers
        429 with Retry-After until the oldest call leaves the window. None lifts the limit."""
        if per_minute is None:
            self._limits.pop(method, None)
        else:
            self._limits[method] = per_minute
        self._windows.pop(method, None)

    def now(self) -> float:
        return self.clock.now().timestamp()

    def _retry_after(self, method: str) -> int | None:
        limit = self._limits.get(method)
        if limit is None:
            return None
        now, window = self.now(), self._windows.setdefault(method, deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window[0] + 60 - now))
        window.append(now)
        return None

    def _take_fault(self, method: str) -> Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.popleft()
        return fault

    # -- serving -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def running(self, *, tls_dir: Path | None = None) -> Iterator[Served]:
        """Serves the fake until the block ends, then closes any Socket Mode connections."""
        with serve(self.app, tls_dir=tls_dir) as served:
            self.base_url = served.url
            try:
                yield served
            finally:
                self.socket_mode.close()

    def new_response_url(self) -> str:
        """A `response_url` on this fake; what the app posts there lands in `responses_at`."""
        if not self.base_url:
            raise RuntimeError("the fake is not running; use `with fake.running():`")
        return f"{self.base_url}/response/{uuid.uuid4().hex}"

    def responses_at(self, url: str) -> list[Any]:
        return self.responses.get(url.rstrip("/").rsplit("/", 1)[-1], [])

    def push_envelope(
        self,
        type_: str,
        payload: Json,
        *,
        accepts_response_payload: bool | None = None,
        timeout: float = 5.0,
    ) -> str:
        """Sends a Socket Mode envelope (`slash_commands`, `interactive` or `events_api`) to the
        connected client and returns its envelope id; see SocketModeHub.push_envelope."""
        return self.socket_mode.push_envelope(
            type_, payload, accepts_response_payload=accepts_response_payload, timeout=timeout
        )

    # The deadline is enforced on the server's loop, where the ack arrives, hence the argument.
    async def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> Json:  # noqa: ASYNC109
        """The client's ack for `envelope_id`: {"envelope_id": ..., "payload"?: ...}."""
        return await self.socket_mode.wait_ack(envelope_id, timeout)

    async def _response_url(self, request: Request) -> Response:
        body = await request.body()
        try:
            posted: Any = json.loads(body)
        except json.JSONDecodeError:
            posted = body.decode(errors="replace")  # kept as text so a test can see what went wrong
        self.responses.setdefault(str(request.path_params["response_id"]), []).append(posted)
        return PlainTextResponse("ok")

    async def _api(self, request: Request) -> Response:
        method = str(request.path_params["method"])
        params: Json = dict(request.query_params)
        failure: SlackError | None = None
        try:
            params |= await decode_body(request)
        except SlackError as decoding:
            failure = decoding
        authorization = request.headers.get("authorization", "")
        token = authorization.removeprefix("Bearer ").strip() or params.get("token")
        params.pop("token", None)
        call = Call(method, params, token)
        self.calls.append(call)
        if self._delay:
            await asyncio.sleep(self._delay)
        status, headers = 200, {}
        if self._outage:
            status, body = 503, SlackError("service_unavailable").body
        elif fault := self._take_fault(method):
            status, body = fault.status, SlackError(fault.error).body
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
        elif (retry_after := self._retry_after(method)) is not None:
            status, body = 429, SlackError("ratelimited").body
            headers["Retry-After"] = str(retry_after)
        elif failure is not None:
            body = failure.body
        else:
            body = await self._answer(call)
        call.status, call.error = status, body.get("error")
        return JSONResponse(body, status_code=status, headers=headers)

    async def _answer(self, call: Call) -> Json:
        try:
            self._authorize(call.method, call.token)
            problems = self.spec.check(call.method, call.params)
            if problems:
                self.violations.extend(f"{call.method}: {problem}" for problem in problems)
                raise SlackError("invalid_arguments", response_metadata={"messages": problems})
            handler = METHODS.get(call.method)
            if handler is None:
                raise SlackError("unknown_method")
            return {"ok": True, **await handler(self, Args(call.params))}
        except SlackError as refused:
            return refused.body

    def _authorize(self, method: str, token: str | None) -> None:
        # Socket Mode takes only the app-level token; every other method refuses it.
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if not token:
            raise SlackError("not_authed")
        if token == expected:
            return
        wrong_type = token.startswith("xapp-") != expected.startswith("xapp-")
        raise SlackError("not_allowed_token_type" if wrong_type else "invalid_auth")

    # -- lookups the methods share -------------------------------------------------------------

    def lookup_channel(self, channel_id: str) -> Channel:
        """By id, or by name with or without '#', as chat.postMessage accepts."""
        channel = self.channels.get(channel_id) or self.channel_named(channel_id)
        if channel is None:
            raise SlackError("channel_not_found")
        return channel

    def writable_channel(self, args: Args, name: str = "channel") -> Channel:
        """The channel argument `name`, refused when it is archived."""
        channel = self.lookup_channel(args.need(name, "channel_not_found"))
        if channel.is_archived:
            raise SlackError("is_archived")
        return channel

    def lookup_message(self, channel: Channel, ts: str) -> Message:
        found = next((m for m in self.messages[channel.id] if m.ts == ts), None)
        if found is None:
            raise SlackError("message_not_found")
        return found

    def lookup_user(self, user_id: str) -> User:
        if user_id not in self.users:
            raise SlackError("user_not_found")
        return self.users[user_id]

    def message_json(self, channel: Channel, message: Message) -> Json:
        pinned = self.pins.get(channel.id, [])
        return message_json(channel, message, self.messages[channel.id], pinned)
