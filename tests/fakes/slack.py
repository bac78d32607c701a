"""A stateful fake of Slack's Web API, served over real HTTP so slack_sdk clients run unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from fakes.server import Served, serve
from fakes.slack_requests import APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID
from fakes.slack_socket import SocketModeHub
from fakes.slack_spec import Args, Json, SlackError, SlackSpec, decode_body, load_spec, page
from orchestrator.clock import Clock, SystemClock

BOT_TOKEN = "xoxb-fake-bot-token"
APP_TOKEN = "xapp-1-fake-app-token"
CHANNEL_NAME = re.compile(r"[a-z0-9_-]+")
MAX_NAME, MAX_TOPIC, MAX_TEXT = 80, 250, 40_000
FAULT_ERRORS = {429: "ratelimited", 503: "service_unavailable"}

Method = Callable[["FakeSlack", Args], Awaitable[Json]]
METHODS: dict[str, Method] = {}


def _method(name: str) -> Callable[[Method], Method]:
    """Registers a FakeSlack coroutine as the answer to Web API method `name`."""

    def register(handler: Method) -> Method:
        METHODS[name] = handler
        return handler

    return register


@dataclass
class Call:
    """One request the fake received, with its decoded arguments and how it was answered."""

    method: str
    params: Json
    token: str | None
    status: int = 200
    error: str | None = None


@dataclass
class User:
    id: str
    name: str
    email: str


@dataclass
class UserGroup:
    id: str
    handle: str
    members: list[str]


@dataclass
class Channel:
    id: str
    name: str
    created: int
    members: list[str]
    topic: str = ""
    purpose: str = ""
    is_private: bool = False
    is_archived: bool = False


@dataclass
class Message:
    ts: str
    text: str
    user: str
    blocks: list[Json] = field(default_factory=list)
    thread_ts: str | None = None
    reply_broadcast: bool = False
    edited_ts: str | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Bookmark:
    id: str
    channel_id: str
    title: str
    link: str
    emoji: str = ""


@dataclass
class Fault:
    error: str
    status: int
    retry_after: int | None
    remaining: int


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

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def _new_ts(self) -> str:
        # Seconds from the clock, and a sequence so two messages in one second still differ.
        return f"{int(self._now())}.{next(self._ids):06d}"

    def add_user(self, name: str, email: str) -> str:
        user = User(self._new_id("U"), name, email)
        self.users[user.id] = user
        return user.id

    def add_usergroup(self, handle: str, member_ids: Iterable[str]) -> str:
        group = UserGroup(self._new_id("S"), handle, list(member_ids))
        self.usergroups[group.id] = group
        return group.id

    def add_channel(
        self, name: str, *, member_ids: Iterable[str] = (), private: bool = False
    ) -> str:
        """A channel that already exists, with the bot in it."""
        channel = Channel(
            self._new_id("C"),
            name,
            int(self._now()),
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
        message = Message(self._new_ts(), text, user_id, thread_ts=thread_ts)
        self.messages[channel_id].append(message)
        return message.ts

    def add_reaction(self, channel_id: str, ts: str, name: str, user_id: str) -> None:
        self._message(self.channels[channel_id], ts).reactions.setdefault(name, []).append(user_id)

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

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _retry_after(self, method: str) -> int | None:
        limit = self._limits.get(method)
        if limit is None:
            return None
        now, window = self._now(), self._windows.setdefault(method, deque())
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

    # -- lookups and the JSON shapes Slack answers with ----------------------------------------

    def _channel(self, channel_id: str) -> Channel:
        """By id, or by name with or without '#', as chat.postMessage accepts."""
        channel = self.channels.get(channel_id) or self.channel_named(channel_id)
        if channel is None:
            raise SlackError("channel_not_found")
        return channel

    def _open_channel(self, args: Args, name: str = "channel") -> Channel:
        channel = self._channel(args.need(name, "channel_not_found"))
        if channel.is_archived:
            raise SlackError("is_archived")
        return channel

    def _message(self, channel: Channel, ts: str) -> Message:
        found = next((m for m in self.messages[channel.id] if m.ts == ts), None)
        if found is None:
            raise SlackError("message_not_found")
        return found

    def _user(self, user_id: str) -> User:
        if user_id not in self.users:
            raise SlackError("user_not_found")
        return self.users[user_id]

    def _channel_json(self, channel: Channel, *, num_members: bool = False) -> Json:
        shown: Json = {
            "id": channel.id,
            "name": channel.name,
            "name_normalized": channel.name,
            "is_channel": not channel.is_private,
            "is_group": channel.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": channel.is_private,
            "is_archived": channel.is_archived,
            "is_general": False,
            "is_shared": False,
            "is_member": BOT_USER_ID in channel.members,
            "created": channel.created,
            "creator": BOT_USER_ID,
            "topic": {"value": channel.topic, "creator": "", "last_set": 0},
            "purpose": {"value": channel.purpose, "creator": "", "last_set": 0},
            "previous_names": [],
        }
        if num_members:
            shown["num_members"] = len(channel.members)
        return shown

    def _user_json(self, user: User) -> Json:
        return {
            "id": user.id,
            "team_id": TEAM_ID,
            "name": user.name,
            "real_name": user.name,
            "deleted": False,
            "is_bot": user.id == BOT_USER_ID,
            "profile": {"email": user.email, "real_name": user.name, "display_name": user.name},
        }

    def _message_json(self, channel: Channel, message: Message) -> Json:
        shown: Json = {
            "type": "message",
            "user": message.user,
            "text": message.text,
            "ts": message.ts,
            "team": TEAM_ID,
        }
        if message.user == BOT_USER_ID:
            shown["bot_id"] = BOT_ID
        if message.blocks:
            shown["blocks"] = message.blocks
        if message.thread_ts:
            shown["thread_ts"] = message.thread_ts
        replies = [m for m in self.messages[channel.id] if m.thread_ts == message.ts]
        if replies and message.thread_ts is None:
            shown |= {
                "thread_ts": message.ts,
                "reply_count": len(replies),
                "reply_users": sorted({m.user for m in replies}),
                "latest_reply": replies[-1].ts,
            }
        if message.edited_ts:
            shown["edited"] = {"user": message.user, "ts": message.edited_ts}
        if message.reactions:
            shown["reactions"] = [
                {"name": name, "users": users, "count": len(users)}
                for name, users in message.reactions.items()
            ]
        if message.ts in self.pins.get(channel.id, []):
            shown["pinned_to"] = [channel.id]
        return shown

    # -- methods -------------------------------------------------------------------------------

    @_method("auth.test")
    async def _auth_test(self, args: Args) -> Json:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "Fake Workspace",
            "user": "orchestrator",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    @_method("apps.connections.open")
    async def _connections_open(self, args: Args) -> Json:
        return {"url": await self.socket_mode.open_url()}

    @_method("conversations.create")
    async def _create(self, args: Args) -> Json:
        name = args.text("name")
        if not name:
            raise SlackError("invalid_name_required")
        if len(name) > MAX_NAME:
            raise SlackError("invalid_name_maxlength")
        if not CHANNEL_NAME.fullmatch(name):
            raise SlackError("invalid_name_specials")
        if not name.strip("-_"):
            raise SlackError("invalid_name_punctuation")
        if self.channel_named(name):
            raise SlackError("name_taken")
        channel_id = self.add_channel(name, private=args.flag("is_private"))
        return {"channel": self._channel_json(self.channels[channel_id])}

    @_method("conversations.info")
    async def _info(self, args: Args) -> Json:
        channel = self._channel(args.need("channel", "channel_not_found"))
        shown = self._channel_json(channel, num_members=args.flag("include_num_members"))
        return {"channel": shown}

    @_method("conversations.setTopic")
    async def _set_topic(self, args: Args) -> Json:
        channel, topic = self._open_channel(args), args.text("topic")
        if len(topic) > MAX_TOPIC:
            raise SlackError("too_long")
        channel.topic = topic
        return {"channel": self._channel_json(channel)}

    @_method("conversations.setPurpose")
    async def _set_purpose(self, args: Args) -> Json:
        channel, purpose = self._open_channel(args), args.text("purpose")
        if len(purpose) > MAX_TOPIC:
            raise SlackError("too_long")
        channel.purpose = purpose
        return {"channel": self._channel_json(channel)}

    @_method("conversations.invite")
    async def _invite(self, args: Args) -> Json:
        channel = self._open_channel(args)
        user_ids = [u.strip() for u in args.need("users", "no_user").split(",") if u.strip()]
        # Without `force`, Slack invites nobody when any one user cannot be invited.
        for error, failing in (
            ("user_not_found", [u for u in user_ids if u not in self.users]),
            ("cant_invite_self", [u for u in user_ids if u == BOT_USER_ID]),
            ("already_in_channel", [u for u in user_ids if u in channel.members]),
        ):
            if failing:
                errors = [{"user": u, "ok": False, "error": error} for u in failing]
                raise SlackError(error, errors=errors)
        channel.members.extend(dict.fromkeys(user_ids))
        return {"channel": self._channel_json(channel)}

    @_method("conversations.members")
    async def _members(self, args: Args) -> Json:
        channel = self._channel(args.need("channel", "channel_not_found"))
        members, following = page(channel.members, args, 100)
        return {"members": members, "response_metadata": {"next_cursor": following}}

    @_method("conversations.history")
    async def _history(self, args: Args) -> Json:
        channel = self._channel(args.need("channel", "channel_not_found"))
        latest = float(args.text("latest") or math.inf)
        oldest = float(args.text("oldest") or 0)
        inclusive = args.flag("inclusive")

        def shown(m: Message) -> bool:
            in_range = (
                oldest <= float(m.ts) <= latest if inclusive else oldest < float(m.ts) < latest
            )
            return in_range and (m.thread_ts is None or m.reply_broadcast)

        newest_first = [m for m in reversed(self.messages[channel.id]) if shown(m)]
        batch, following = page(newest_first, args, 100)
        return {
            "messages": [self._message_json(channel, m) for m in batch],
            "has_more": bool(following),
            "pin_count": len(self.pins.get(channel.id, [])),
            "response_metadata": {"next_cursor": following},
        }

    @_method("conversations.replies")
    async def _replies(self, args: Args) -> Json:
        channel = self._channel(args.need("channel", "channel_not_found"))
        try:
            parent = self._message(channel, args.need("ts", "thread_not_found"))
        except SlackError:
            raise SlackError("thread_not_found") from None
        root = parent.thread_ts or parent.ts
        thread = [m for m in self.messages[channel.id] if root in (m.ts, m.thread_ts)]
        batch, following = page(thread, args, 1000)
        return {
            "messages": [self._message_json(channel, m) for m in batch],
            "has_more": bool(following),
            "response_metadata": {"next_cursor": following},
        }

    @_method("users.lookupByEmail")
    async def _lookup_by_email(self, args: Args) -> Json:
        email = args.need("email", "users_not_found").lower()
        user = next((u for u in self.users.values() if u.email.lower() == email), None)
        if user is None:
            raise SlackError("users_not_found")
        return {"user": self._user_json(user)}

    @_method("users.info")
    async def _user_info(self, args: Args) -> Json:
        return {"user": self._user_json(self._user(args.need("user", "user_not_found")))}

    @_method("usergroups.users.list")
    async def _usergroup_users(self, args: Args) -> Json:
        group = self.usergroups.get(args.need("usergroup", "no_such_subteam"))
        if group is None:
            raise SlackError("no_such_subteam")
        return {"users": list(group.members)}

    def _content(self, args: Args) -> tuple[str, list[Json]]:
        text, blocks = args.text("text"), args.blocks("blocks") or []
        if not text and not blocks and not args.blocks("attachments"):
            raise SlackError("no_text")
        if len(text) > MAX_TEXT:
            raise SlackError("msg_too_long")
        return text, blocks

    @_method("chat.postMessage")
    async def _post_message(self, args: Args) -> Json:
        channel = self._open_channel(args)
        text, blocks = self._content(args)
        thread_ts = args.text("thread_ts") or None
        parent = next((m for m in self.messages[channel.id] if m.ts == thread_ts), None)
        if parent is not None and parent.thread_ts:
            thread_ts = parent.thread_ts  # a reply to a reply joins the same thread
        message = Message(
            self._new_ts(),
            text,
            BOT_USER_ID,
            blocks,
            thread_ts=thread_ts,
            reply_broadcast=args.flag("reply_broadcast"),
        )
        self.messages[channel.id].append(message)
        shown = self._message_json(channel, message)
        return {"channel": channel.id, "ts": message.ts, "message": shown}

    @_method("chat.update")
    async def _update(self, args: Args) -> Json:
        channel = self._open_channel(args)
        message = self._message(channel, args.need("ts", "message_not_found"))
        if message.user != BOT_USER_ID:
            raise SlackError("cant_update_message")
        text, blocks = self._content(args)
        message.text = text
        if "blocks" in args.values:
            message.blocks = blocks
        message.edited_ts = self._new_ts()
        shown = self._message_json(channel, message)
        return {"channel": channel.id, "ts": message.ts, "text": text, "message": shown}

    @_method("chat.postEphemeral")
    async def _post_ephemeral(self, args: Args) -> Json:
        channel = self._open_channel(args)
        user = self._user(args.need("user", "user_not_found"))
        if user.id not in channel.members:
            raise SlackError("user_not_in_channel")
        text, blocks = self._content(args)
        ts = self._new_ts()
        shown = {"channel": channel.id, "user": user.id, "text": text, "blocks": blocks, "ts": ts}
        self.ephemerals.append(shown)
        return {"message_ts": ts}

    @_method("pins.add")
    async def _pin(self, args: Args) -> Json:
        channel = self._open_channel(args)
        message = self._message(channel, args.need("timestamp", "no_item_specified"))
        pinned = self.pins.setdefault(channel.id, [])
        if message.ts in pinned:
            raise SlackError("already_pinned")
        pinned.append(message.ts)
        return {}

    @_method("bookmarks.add")
    async def _bookmark(self, args: Args) -> Json:
        channel = self._open_channel(args, "channel_id")
        if args.text("type") != "link":
            raise SlackError("invalid_bookmark_type")
        title, link = args.need("title", "invalid_title"), args.need("link", "invalid_link")
        bookmark = Bookmark(self._new_id("Bk"), channel.id, title, link, args.text("emoji"))
        self.bookmarks.setdefault(channel.id, []).append(bookmark)
        shown = {
            "id": bookmark.id,
            "channel_id": channel.id,
            "title": title,
            "link": link,
            "emoji": bookmark.emoji or None,
            "type": "link",
            "date_created": int(self._now()),
            "date_updated": 0,
            "rank": "U",
            "last_updated_by_user_id": BOT_USER_ID,
        }
        return {"bookmark": shown}

    @_method("reactions.get")
    async def _reactions(self, args: Args) -> Json:
        channel = self._channel(args.need("channel", "channel_not_found"))
        message = self._message(channel, args.need("timestamp", "no_item_specified"))
        return {
            "type": "message",
            "channel": channel.id,
            "message": self._message_json(channel, message),
        }
