"""Who to invite into an incident channel: on-call, emails, user groups and ids become Slack
users; anyone who cannot be found is reported, never a reason to fail the channel."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from handlers.slack_errors import SlackCallError, call

log = logging.getLogger(__name__)

OncallEmails = Callable[[Mapping[str, Any]], Awaitable[list[str]]]
SLACK_ID = re.compile(r"[UW][A-Z0-9]{2,}")
# Refusals of one user by conversations.invite that say "already done" rather than "no".
ALREADY_THERE = frozenset({"already_in_channel", "cant_invite_self"})


@dataclass
class Invitation:
    invited: list[str] = field(default_factory=list)  # user ids now in the channel
    not_found: list[str] = field(default_factory=list)  # entries nobody could be found for
    problems: list[str] = field(default_factory=list)


class People:
    """Resolves invite entries for one delivery; transient Slack errors propagate (the whole
    action is retried), permanent ones turn into `not_found`."""

    def __init__(self, client: AsyncWebClient, oncall_emails: OncallEmails | None) -> None:
        self._client = client
        self._oncall_emails = oncall_emails
        self._groups: dict[str, str] | None = None

    async def invite(
        self, channel_id: str, entries: list[str], incident: Mapping[str, Any]
    ) -> Invitation:
        outcome = Invitation()
        wanted: dict[str, None] = {}
        for entry in entries:
            found = await self._resolve(entry.strip(), incident, outcome)
            wanted.update(dict.fromkeys(found))
        if wanted:
            await self._invite(channel_id, list(wanted), outcome)
        return outcome

    async def _resolve(
        self, entry: str, incident: Mapping[str, Any], outcome: Invitation
    ) -> list[str]:
        if entry == "oncall":
            return await self._oncall(incident, outcome)
        if "@" in entry and not entry.startswith("@"):
            return await self._by_email(entry, outcome)
        if entry.startswith("@"):
            return await self._group(entry, outcome)
        if SLACK_ID.fullmatch(entry):
            return [entry]
        outcome.not_found.append(entry)
        return []

    async def _oncall(self, incident: Mapping[str, Any], outcome: Invitation) -> list[str]:
        if self._oncall_emails is None:
            outcome.not_found.append("oncall")
            outcome.problems.append("oncall: no on-call source is configured")
            return []
        try:
            emails = await self._oncall_emails(incident)
        except Exception as err:  # the on-call source is another vendor: report, don't fail
            log.warning("on-call lookup failed: %s", type(err).__name__)
            outcome.not_found.append("oncall")
            outcome.problems.append(f"oncall: lookup failed ({type(err).__name__})")
            return []
        found: list[str] = []
        for email in emails:
            found += await self._by_email(email, outcome)
        return found

    async def _by_email(self, email: str, outcome: Invitation) -> list[str]:
        try:
            answer = await call(
                "users.lookupByEmail", self._client.users_lookupByEmail(email=email)
            )
        except SlackCallError as err:
            if err.retryable:
                raise
            outcome.not_found.append(email)
            return []
        return [str(answer["user"]["id"])]

    async def _group(self, entry: str, outcome: Invitation) -> list[str]:
        handle = entry.removeprefix("@").lower()
        try:
            group_id = (await self._group_ids()).get(handle)
            if group_id is None:
                outcome.not_found.append(entry)
                return []
            answer = await call(
                "usergroups.users.list", self._client.usergroups_users_list(usergroup=group_id)
            )
        except SlackCallError as err:
            if err.retryable:
                raise
            outcome.not_found.append(entry)
            outcome.problems.append(f"{entry}: {err}")
            return []
        return [str(user) for user in answer.get("users") or []]

    async def _group_ids(self) -> dict[str, str]:
        if self._groups is None:
            answer = await call("usergroups.list", self._client.usergroups_list())
            self._groups = {
                str(group.get("handle", "")).lower(): str(group["id"])
                for group in answer.get("usergroups") or []
            }
        return self._groups

    async def _invite(self, channel_id: str, user_ids: list[str], outcome: Invitation) -> None:
        """Slack invites nobody when one user fails, so the failing users (named in the
        answer's `errors`) are set aside and the rest invited again."""
        pending, done = list(user_ids), set[str]()
        while pending:
            try:
                await call(
                    "conversations.invite",
                    self._client.conversations_invite(channel=channel_id, users=pending),
                )
                done.update(pending)
                break
            except SlackCallError as err:
                if err.retryable:
                    raise
                refused = _refused_users(err, pending)
                if not refused:
                    outcome.problems.append(f"invite: {err.error}")
                    outcome.not_found += pending
                    break
                for user, error in refused.items():
                    if error == "already_in_channel":
                        done.add(user)
                    elif error not in ALREADY_THERE:
                        outcome.not_found.append(user)
                pending = [user for user in pending if user not in refused]
        outcome.invited = [user for user in user_ids if user in done]


def _refused_users(err: SlackCallError, pending: list[str]) -> dict[str, str]:
    refused = {
        str(item.get("user")): str(item.get("error"))
        for item in err.body.get("errors") or []
        if isinstance(item, Mapping) and item.get("user") in pending
    }
    if not refused and len(pending) == 1 and err.error in ALREADY_THERE | {"user_not_found"}:
        refused = {pending[0]: err.error}  # older answers name no user when only one was asked
    return refused
