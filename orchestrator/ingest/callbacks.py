"""Builds, from settings, the ways people answer back: Slack's HTTP callbacks (or its Socket
Mode), and PagerDuty's webhooks. Each is on only when its secret is configured."""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from starlette.routing import BaseRoute

from orchestrator.clock import Clock
from orchestrator.ingest.pagerduty import pagerduty_routes
from orchestrator.ingest.slack import Authorization, RequestGuard, SlackResponder, slack_routes
from orchestrator.pipeline import Pipeline
from orchestrator.settings import Settings
from orchestrator.store.protocols import Store

log = logging.getLogger(__name__)


def vendor_ssl(settings: Settings) -> ssl.SSLContext:
    """The trust store for Slack and PagerDuty: the system's, or the configured bundle."""
    if settings.vendor_ca_file is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=str(settings.vendor_ca_file))


def slack_web_client(settings: Settings) -> AsyncWebClient | None:
    if settings.slack_bot_token is None:
        return None
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url or AsyncWebClient.BASE_URL,
        ssl=vendor_ssl(settings),
    )


@dataclass
class SlackLookups:
    """What the responder asks Slack: a marked message's text, a user group's members."""

    web: AsyncWebClient

    async def message_text(self, channel: str, ts: str) -> str | None:
        try:
            found = await self.web.conversations_history(
                channel=channel, latest=ts, oldest=ts, inclusive=True, limit=1
            )
        except SlackApiError as err:
            log.warning(
                "could not read a marked message in %s: %s", channel, err.response.get("error")
            )
            return None
        messages = found.get("messages") or []
        return str(messages[0].get("text", "")) or None if messages else None

    async def group_members(self, group: str) -> set[str]:
        try:
            found = await self.web.usergroups_users_list(usergroup=group)
        except SlackApiError as err:
            log.warning("could not list user group %s: %s", group, err.response.get("error"))
            return set()
        return {str(user) for user in found.get("users") or []}


def slack_responder(
    settings: Settings, pipeline: Pipeline, store: Store, web: AsyncWebClient | None
) -> SlackResponder:
    lookups = SlackLookups(web) if web is not None else None
    return SlackResponder(
        pipeline,
        store,
        authorization=Authorization(
            responders=settings.slack_responder_ids(),
            group_members=lookups.group_members if lookups else None,
        ),
        note_reaction=settings.slack_note_reaction,
        fetch_message=lookups.message_text if lookups else None,
    )


def callback_routes(
    settings: Settings,
    pipeline: Pipeline,
    store: Store,
    clock: Clock,
    responder: SlackResponder | None,
) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    if settings.slack_signing_secret is not None and responder is not None:
        guard = RequestGuard(settings.slack_signing_secret.get_secret_value(), clock)
        routes += slack_routes(responder, guard)
    if settings.pagerduty_webhook_secret is not None:
        routes += pagerduty_routes(
            pipeline,
            settings.pagerduty_webhook_secret.get_secret_value(),
            dedup_prefix=settings.pagerduty_dedup_prefix,
        )
    return routes
