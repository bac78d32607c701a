"""The fake Slack's records (people, groups, channels, messages, calls) and their JSON shapes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fakes.slack_requests import BOT_ID, BOT_USER_ID, TEAM_ID
from fakes.slack_spec import Args, Json

# A Web API method: the fake (typed loosely, as it imports the method tables) and the arguments.
Method = Callable[[Any, Args], Awaitable[Json]]


def registrar(table: dict[str, Method]) -> Callable[[str], Callable[[Method], Method]]:
    """A decorator that records a coroutine in `table` as the answer to Web API method `name`."""

    def method(name: str) -> Callable[[Method], Method]:
        def register(handler: Method) -> Method:
            table[name] = handler
            return handler

        return register

    return method


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
    created: int = 0


@dataclass
class Fault:
    error: str
    status: int
    retry_after: int | None
    remaining: int


def channel_json(channel: Channel, *, num_members: bool = False) -> Json:
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


def user_json(user: User) -> Json:
    return {
        "id": user.id,
        "team_id": TEAM_ID,
        "name": user.name,
        "real_name": user.name,
        "deleted": False,
        "is_bot": user.id == BOT_USER_ID,
        "profile": {"email": user.email, "real_name": user.name, "display_name": user.name},
    }


def usergroup_json(group: UserGroup, *, include_users: bool = False) -> Json:
    shown: Json = {
        "id": group.id,
        "team_id": TEAM_ID,
        "is_usergroup": True,
        "name": group.handle,
        "handle": group.handle,
        "description": "",
        "date_delete": 0,
        "user_count": len(group.members),
    }
    if include_users:
        shown["users"] = list(group.members)
    return shown


def bookmark_json(bookmark: Bookmark) -> Json:
    return {
        "id": bookmark.id,
        "channel_id": bookmark.channel_id,
        "title": bookmark.title,
        "link": bookmark.link,
        "emoji": bookmark.emoji or None,
        "type": "link",
        "date_created": bookmark.created,
        "date_updated": 0,
        "rank": "U",
        "last_updated_by_user_id": BOT_USER_ID,
    }


def message_json(
    channel: Channel, message: Message, conversation: list[Message], pinned: list[str]
) -> Json:
    """`message` as Slack shows it in `channel`, whose messages are `conversation`."""
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
    replies = [m for m in conversation if m.thread_ts == message.ts]
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
    if message.ts in pinned:
        shown["pinned_to"] = [channel.id]
    return shown
