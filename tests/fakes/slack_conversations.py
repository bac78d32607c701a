"""The fake Slack's `conversations.*` methods: creating, naming, describing, joining and reading
channels."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from fakes.slack_requests import BOT_USER_ID
from fakes.slack_spec import Args, Json, SlackError, page
from fakes.slack_state import Message, Method, channel_json, registrar

if TYPE_CHECKING:
    from fakes.slack import FakeSlack

CHANNEL_NAME = re.compile(r"[a-z0-9_-]+")
MAX_NAME, MAX_TOPIC = 80, 250
CHANNEL_TYPES = frozenset({"public_channel", "private_channel", "mpim", "im"})

METHODS: dict[str, Method] = {}
web_method = registrar(METHODS)


def _checked_name(fake: FakeSlack, args: Args) -> str:
    """The requested channel name, refused the way Slack refuses it."""
    name = args.text("name")
    if not name:
        raise SlackError("invalid_name_required")
    if len(name) > MAX_NAME:
        raise SlackError("invalid_name_maxlength")
    if not CHANNEL_NAME.fullmatch(name):
        raise SlackError("invalid_name_specials")
    if not name.strip("-_"):
        raise SlackError("invalid_name_punctuation")
    if fake.channel_named(name):
        raise SlackError("name_taken")
    return name


@web_method("conversations.create")
async def create(fake: FakeSlack, args: Args) -> Json:
    name = _checked_name(fake, args)
    channel_id = fake.add_channel(name, private=args.flag("is_private"))
    return {"channel": channel_json(fake.channels[channel_id])}


@web_method("conversations.rename")
async def rename(fake: FakeSlack, args: Args) -> Json:
    channel = fake.writable_channel(args)
    if BOT_USER_ID not in channel.members:
        raise SlackError("not_in_channel")
    if args.text("name") == channel.name:
        return {"channel": channel_json(channel)}
    channel.name = _checked_name(fake, args)
    return {"channel": channel_json(channel)}


@web_method("conversations.info")
async def info(fake: FakeSlack, args: Args) -> Json:
    channel = fake.lookup_channel(args.need("channel", "channel_not_found"))
    return {"channel": channel_json(channel, num_members=args.flag("include_num_members"))}


@web_method("conversations.list")
async def list_(fake: FakeSlack, args: Args) -> Json:
    types = {t.strip() for t in (args.text("types") or "public_channel").split(",") if t.strip()}
    if not types <= CHANNEL_TYPES:
        raise SlackError("invalid_types")
    wanted = [
        channel
        for channel in fake.channels.values()
        if ("private_channel" if channel.is_private else "public_channel") in types
        # A bot sees only the private channels it is in.
        and (not channel.is_private or BOT_USER_ID in channel.members)
        and not (channel.is_archived and args.flag("exclude_archived"))
    ]
    batch, following = page(wanted, args, 100)
    return {
        "channels": [channel_json(channel) for channel in batch],
        "response_metadata": {"next_cursor": following},
    }


@web_method("conversations.setTopic")
async def set_topic(fake: FakeSlack, args: Args) -> Json:
    channel, topic = fake.writable_channel(args), args.text("topic")
    if len(topic) > MAX_TOPIC:
        raise SlackError("too_long")
    channel.topic = topic
    return {"channel": channel_json(channel)}


@web_method("conversations.setPurpose")
async def set_purpose(fake: FakeSlack, args: Args) -> Json:
    channel, purpose = fake.writable_channel(args), args.text("purpose")
    if len(purpose) > MAX_TOPIC:
        raise SlackError("too_long")
    channel.purpose = purpose
    return {"channel": channel_json(channel)}


@web_method("conversations.invite")
async def invite(fake: FakeSlack, args: Args) -> Json:
    channel = fake.writable_channel(args)
    user_ids = [u.strip() for u in args.need("users", "no_user").split(",") if u.strip()]
    # Without `force`, Slack invites nobody when any one user cannot be invited.
    for error, failing in (
        ("user_not_found", [u for u in user_ids if u not in fake.users]),
        ("cant_invite_self", [u for u in user_ids if u == BOT_USER_ID]),
        ("already_in_channel", [u for u in user_ids if u in channel.members]),
    ):
        if failing:
            errors = [{"user": u, "ok": False, "error": error} for u in failing]
            raise SlackError(error, errors=errors)
    channel.members.extend(dict.fromkeys(user_ids))
    return {"channel": channel_json(channel)}


@web_method("conversations.members")
async def members(fake: FakeSlack, args: Args) -> Json:
    channel = fake.lookup_channel(args.need("channel", "channel_not_found"))
    batch, following = page(channel.members, args, 100)
    return {"members": batch, "response_metadata": {"next_cursor": following}}


@web_method("conversations.history")
async def history(fake: FakeSlack, args: Args) -> Json:
    channel = fake.lookup_channel(args.need("channel", "channel_not_found"))
    latest = float(args.text("latest") or math.inf)
    oldest = float(args.text("oldest") or 0)
    inclusive = args.flag("inclusive")

    def shown(m: Message) -> bool:
        in_range = oldest <= float(m.ts) <= latest if inclusive else oldest < float(m.ts) < latest
        return in_range and (m.thread_ts is None or m.reply_broadcast)

    newest_first = [m for m in reversed(fake.messages[channel.id]) if shown(m)]
    batch, following = page(newest_first, args, 100)
    return {
        "messages": [fake.message_json(channel, m) for m in batch],
        "has_more": bool(following),
        "pin_count": len(fake.pins.get(channel.id, [])),
        "response_metadata": {"next_cursor": following},
    }


@web_method("conversations.replies")
async def replies(fake: FakeSlack, args: Args) -> Json:
    channel = fake.lookup_channel(args.need("channel", "channel_not_found"))
    try:
        parent = fake.lookup_message(channel, args.need("ts", "thread_not_found"))
    except SlackError:
        raise SlackError("thread_not_found") from None
    root = parent.thread_ts or parent.ts
    thread = [m for m in fake.messages[channel.id] if root in (m.ts, m.thread_ts)]
    batch, following = page(thread, args, 1000)
    return {
        "messages": [fake.message_json(channel, m) for m in batch],
        "has_more": bool(following),
        "response_metadata": {"next_cursor": following},
    }
