"""The fake Slack's other Web API methods: auth, Socket Mode tickets, people and groups,
messages, pins, bookmarks and reactions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fakes.slack_requests import BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID
from fakes.slack_spec import Args, Json, SlackError
from fakes.slack_state import (
    Bookmark,
    Message,
    Method,
    bookmark_json,
    registrar,
    user_json,
    usergroup_json,
)

if TYPE_CHECKING:
    from fakes.slack import FakeSlack

MAX_TEXT = 40_000

METHODS: dict[str, Method] = {}
web_method = registrar(METHODS)


@web_method("auth.test")
async def auth_test(fake: FakeSlack, args: Args) -> Json:
    return {
        "url": f"https://{TEAM_DOMAIN}.slack.com/",
        "team": "Fake Workspace",
        "user": "orchestrator",
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
    }


@web_method("apps.connections.open")
async def connections_open(fake: FakeSlack, args: Args) -> Json:
    return {"url": await fake.socket_mode.open_url()}


@web_method("users.lookupByEmail")
async def lookup_by_email(fake: FakeSlack, args: Args) -> Json:
    email = args.need("email", "users_not_found").lower()
    user = next((u for u in fake.users.values() if u.email.lower() == email), None)
    if user is None:
        raise SlackError("users_not_found")
    return {"user": user_json(user)}


@web_method("users.info")
async def user_info(fake: FakeSlack, args: Args) -> Json:
    return {"user": user_json(fake.lookup_user(args.need("user", "user_not_found")))}


@web_method("usergroups.list")
async def usergroups_list(fake: FakeSlack, args: Args) -> Json:
    include_users = args.flag("include_users")
    groups = [usergroup_json(g, include_users=include_users) for g in fake.usergroups.values()]
    return {"usergroups": groups}


@web_method("usergroups.users.list")
async def usergroup_users(fake: FakeSlack, args: Args) -> Json:
    group = fake.usergroups.get(args.need("usergroup", "no_such_subteam"))
    if group is None:
        raise SlackError("no_such_subteam")
    return {"users": list(group.members)}


def _content(args: Args) -> tuple[str, list[Json]]:
    text, blocks = args.text("text"), args.blocks("blocks") or []
    if not text and not blocks and not args.blocks("attachments"):
        raise SlackError("no_text")
    if len(text) > MAX_TEXT:
        raise SlackError("msg_too_long")
    return text, blocks


@web_method("chat.postMessage")
async def post_message(fake: FakeSlack, args: Args) -> Json:
    channel = fake.writable_channel(args)
    text, blocks = _content(args)
    thread_ts = args.text("thread_ts") or None
    parent = next((m for m in fake.messages[channel.id] if m.ts == thread_ts), None)
    if parent is not None and parent.thread_ts:
        thread_ts = parent.thread_ts  # a reply to a reply joins the same thread
    message = Message(
        fake.new_ts(),
        text,
        BOT_USER_ID,
        blocks,
        thread_ts=thread_ts,
        reply_broadcast=args.flag("reply_broadcast"),
    )
    fake.messages[channel.id].append(message)
    shown = fake.message_json(channel, message)
    return {"channel": channel.id, "ts": message.ts, "message": shown}


@web_method("chat.update")
async def update(fake: FakeSlack, args: Args) -> Json:
    channel = fake.writable_channel(args)
    message = fake.lookup_message(channel, args.need("ts", "message_not_found"))
    if message.user != BOT_USER_ID:
        raise SlackError("cant_update_message")
    text, blocks = _content(args)
    message.text = text
    if "blocks" in args.values:
        message.blocks = blocks
    message.edited_ts = fake.new_ts()
    shown = fake.message_json(channel, message)
    return {"channel": channel.id, "ts": message.ts, "text": text, "message": shown}


@web_method("chat.postEphemeral")
async def post_ephemeral(fake: FakeSlack, args: Args) -> Json:
    channel = fake.writable_channel(args)
    user = fake.lookup_user(args.need("user", "user_not_found"))
    if user.id not in channel.members:
        raise SlackError("user_not_in_channel")
    text, blocks = _content(args)
    ts = fake.new_ts()
    shown = {"channel": channel.id, "user": user.id, "text": text, "blocks": blocks, "ts": ts}
    fake.ephemerals.append(shown)
    return {"message_ts": ts}


@web_method("pins.add")
async def pin(fake: FakeSlack, args: Args) -> Json:
    channel = fake.writable_channel(args)
    message = fake.lookup_message(channel, args.need("timestamp", "no_item_specified"))
    pinned = fake.pins.setdefault(channel.id, [])
    if message.ts in pinned:
        raise SlackError("already_pinned")
    pinned.append(message.ts)
    return {}


@web_method("bookmarks.add")
async def add_bookmark(fake: FakeSlack, args: Args) -> Json:
    channel = fake.writable_channel(args, "channel_id")
    if args.text("type") != "link":
        raise SlackError("invalid_bookmark_type")
    title, link = args.need("title", "invalid_title"), args.need("link", "invalid_link")
    bookmark = Bookmark(
        fake.new_id("Bk"), channel.id, title, link, args.text("emoji"), int(fake.now())
    )
    fake.bookmarks.setdefault(channel.id, []).append(bookmark)
    return {"bookmark": bookmark_json(bookmark)}


@web_method("bookmarks.list")
async def list_bookmarks(fake: FakeSlack, args: Args) -> Json:
    channel = fake.lookup_channel(args.need("channel_id", "channel_not_found"))
    return {"bookmarks": [bookmark_json(b) for b in fake.bookmarks.get(channel.id, [])]}


@web_method("reactions.get")
async def reactions(fake: FakeSlack, args: Args) -> Json:
    channel = fake.lookup_channel(args.need("channel", "channel_not_found"))
    message = fake.lookup_message(channel, args.need("timestamp", "no_item_specified"))
    return {
        "type": "message",
        "channel": channel.id,
        "message": fake.message_json(channel, message),
    }
