"""`slack.open_channel`: create (or find again) the incident channel, then set it up: purpose,
topic, people, the pinned summary with its buttons, and bookmarks.

The dispatcher may deliver this action again after a crash that lost the first result. The
channel's purpose carries a marker with the action's key, written right after creation, so a
later attempt that meets `name_taken` can tell its own channel from a stranger's, and each
set-up step checks what is already there instead of doing it twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from slack_sdk.web.async_client import AsyncWebClient

from handlers.slack_blocks import (
    MAX_PURPOSE,
    clip,
    default_topic,
    is_drill,
    is_summary,
    purpose,
    summary_blocks,
    summary_text,
)
from handlers.slack_errors import SlackCallError, call
from handlers.slack_naming import CreationPace, channel_name, with_suffix
from handlers.slack_people import OncallEmails, People
from orchestrator.actions import Action, ActionResult

OPEN_CHANNEL = "slack.open_channel"
MAX_SUFFIX = 20  # name-2 … name-20: past that, something other than collisions is wrong
LIST_PAGE, LIST_PAGES = 200, 50
HISTORY_LOOKBACK = 100
T = TypeVar("T")


def marker(action: Action) -> str:
    return f"[incident-orchestrator {action.key}]"


def channel_url(channel_id: str) -> str:
    # Slack's redirect works in any workspace, so no auth.test round trip is needed for it.
    return f"https://slack.com/app_redirect?channel={channel_id}"


@dataclass
class SetUp:
    """What one delivery did to the channel; `marked` once a later attempt could find it."""

    channel_id: str
    reused: bool
    marked: bool
    problems: list[str] = field(default_factory=list)

    async def step(self, label: str, run: Callable[[], Awaitable[T]]) -> T | None:
        """Runs one set-up step. A transient failure retries the whole action only when the
        retry can find this channel again; any other failure is reported, not fatal, because
        the channel exists and later posts need its id."""
        try:
            return await run()
        except SlackCallError as err:
            if err.retryable and self.marked:
                raise
            self.problems.append(f"{label}: {err}")
            return None


class ChannelOpener:
    def __init__(
        self, client: AsyncWebClient, pace: CreationPace, oncall_emails: OncallEmails | None
    ) -> None:
        self._client = client
        self._pace = pace
        self._oncall_emails = oncall_emails

    async def open(self, action: Action) -> ActionResult:
        incident: Mapping[str, Any] = action.params.get("incident") or {}
        known = action.latest_result(OPEN_CHANNEL, "channel_id")
        if known:
            return ActionResult.success(
                "the incident channel is already open",
                channel_id=known,
                channel=action.latest_result(OPEN_CHANNEL, "channel") or "",
                channel_url=channel_url(str(known)),
                summary_ts=action.latest_result(OPEN_CHANNEL, "summary_ts") or "",
                invited=[],
                not_found=[],
            )
        fallback = f"incident-{action.incident_number}"
        name = channel_name(str(action.params.get("name") or ""), fallback)
        channel, reused = await self._create_or_reuse(name, marker(action))
        setup = SetUp(str(channel["id"]), reused=reused, marked=reused)
        if not reused:
            text = purpose(incident, marker(action))
            if await setup.step("purpose", lambda: self._set_purpose(setup.channel_id, text)):
                setup.marked = True
        topic = clip(str(action.params.get("topic") or default_topic(incident)), MAX_PURPOSE)
        if str(channel.get("topic", {}).get("value", "")) != topic:
            await setup.step("topic", lambda: self._set_topic(setup.channel_id, topic))
        people = People(self._client, self._oncall_emails)
        entries = [str(entry) for entry in action.params.get("invite") or []]
        invitation = await setup.step(
            "invite", lambda: people.invite(setup.channel_id, entries, incident)
        )
        drill = is_drill(incident, action.is_drill)
        summary_ts = await setup.step("summary", lambda: self._summary(setup, incident, drill))
        if summary_ts:
            await setup.step("pin", lambda: self._pin(setup.channel_id, summary_ts))
        paged = action.latest_result("pagerduty.trigger", "incident_url")
        links = [
            ("Runbook", str(incident.get("runbook") or "")),
            ("PagerDuty incident", str(paged or "")),
        ]
        await setup.step("bookmarks", lambda: self._bookmarks(setup, links))
        result: dict[str, Any] = {
            "channel_id": setup.channel_id,
            "channel": str(channel.get("name", name)),
            "channel_url": channel_url(setup.channel_id),
            "summary_ts": summary_ts or "",
            "invited": invitation.invited if invitation else [],
            "not_found": invitation.not_found if invitation else [],
        }
        problems = setup.problems + (invitation.problems if invitation else [])
        if problems:
            result["problems"] = problems
        verb = "found again" if reused else "opened"
        return ActionResult.success(f"{verb} #{result['channel']}", **result)

    async def _create_or_reuse(self, name: str, mark: str) -> tuple[Mapping[str, Any], bool]:
        for number in range(1, MAX_SUFFIX + 1):
            candidate = name if number == 1 else with_suffix(name, number)
            wait = self._pace.take()
            if wait:
                raise SlackCallError(
                    "conversations.create",
                    "paced: the channel creation budget for this minute is spent",
                    retryable=True,
                    retry_after=wait,
                )
            try:
                created = await call(
                    "conversations.create", self._client.conversations_create(name=candidate)
                )
                return created["channel"], False
            except SlackCallError as err:
                if err.error != "name_taken":
                    raise
            existing = await self._named(candidate)
            if existing is not None and _is_ours(existing, mark):
                return existing, True
        raise SlackCallError(
            "conversations.create",
            f"{name} and {MAX_SUFFIX - 1} suffixes are taken",
            retryable=False,
        )

    async def _named(self, name: str) -> Mapping[str, Any] | None:
        """The channel called `name`, archived ones included (their names stay taken)."""
        cursor = ""
        for _ in range(LIST_PAGES):
            page = await call(
                "conversations.list",
                self._client.conversations_list(
                    types="public_channel,private_channel", limit=LIST_PAGE, cursor=cursor or None
                ),
            )
            for channel in page.get("channels") or []:
                if channel.get("name") == name:
                    return dict(channel)
            cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                break
        return None

    async def _set_purpose(self, channel_id: str, text: str) -> bool:
        await call(
            "conversations.setPurpose",
            self._client.conversations_setPurpose(channel=channel_id, purpose=text),
        )
        return True

    async def _set_topic(self, channel_id: str, topic: str) -> None:
        await call(
            "conversations.setTopic",
            self._client.conversations_setTopic(channel=channel_id, topic=topic),
        )

    async def _summary(self, setup: SetUp, incident: Mapping[str, Any], drill: bool) -> str:
        """Posts the summary, or finds the one an earlier attempt posted."""
        if setup.reused and (ts := await self._posted_summary(setup.channel_id)):
            return ts
        posted = await call(
            "chat.postMessage",
            self._client.chat_postMessage(
                channel=setup.channel_id,
                text=summary_text(incident, drill),
                blocks=summary_blocks(incident, drill),
            ),
        )
        return str(posted["ts"])

    async def _pin(self, channel_id: str, ts: str) -> None:
        try:
            await call("pins.add", self._client.pins_add(channel=channel_id, timestamp=ts))
        except SlackCallError as err:
            if err.error != "already_pinned":
                raise

    async def _posted_summary(self, channel_id: str) -> str | None:
        history = await call(
            "conversations.history",
            self._client.conversations_history(channel=channel_id, limit=HISTORY_LOOKBACK),
        )
        found = next((m for m in history.get("messages") or [] if is_summary(m)), None)
        return str(found["ts"]) if found else None

    async def _bookmarks(self, setup: SetUp, links: list[tuple[str, str]]) -> None:
        wanted = [
            (title, link) for title, link in links if link.startswith(("https://", "http://"))
        ]
        if not wanted:
            return
        present: set[str] = set()
        if setup.reused:
            listed = await call(
                "bookmarks.list", self._client.bookmarks_list(channel_id=setup.channel_id)
            )
            present = {str(b.get("link", "")) for b in listed.get("bookmarks") or []}
        for title, link in wanted:
            if link in present:
                continue
            await call(
                "bookmarks.add",
                self._client.bookmarks_add(
                    channel_id=setup.channel_id, title=title, type="link", link=link
                ),
            )


def _is_ours(channel: Mapping[str, Any], mark: str) -> bool:
    purpose_value = str((channel.get("purpose") or {}).get("value") or "")
    return not channel.get("is_archived") and mark in purpose_value
