"""The composition root: builds the store, playbooks, pipeline and dispatcher from Settings."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from handlers.console import ConsoleHandler
from orchestrator.actions import ActionHandler
from orchestrator.clock import Clock, SystemClock
from orchestrator.dispatcher import Dispatcher
from orchestrator.incident.policy import PolicyDefaults
from orchestrator.instruments import Instruments
from orchestrator.lifecycle import PUBLISH_EVENT, REFRESH_SUMMARY
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.playbook.model import BusinessHours
from orchestrator.playbook.playbookset import PlaybookSet
from orchestrator.settings import Settings
from orchestrator.store.sql import SqlStore

if TYPE_CHECKING:
    from handlers.pagerduty import PagerDutyHandler  # imported where used: see vendor_handlers

log = logging.getLogger(__name__)


class ConfigurationError(RuntimeError):
    pass


@dataclass
class App:
    settings: Settings
    clock: Clock
    store: SqlStore
    playbooks: PlaybookSet
    pipeline: Pipeline
    dispatcher: Dispatcher
    handlers: Mapping[str, ActionHandler]

    async def close(self) -> None:
        await close_handlers(self.handlers.values())
        await self.store.close()


async def close_handlers(handlers: Iterable[ActionHandler]) -> None:
    """Closes each handler's connections once (one handler may route several actions)."""
    for handler in {id(h): h for h in handlers}.values():
        close = getattr(handler, "close", None)
        if close is not None:
            await close()


def route_handlers(handlers: Iterable[ActionHandler]) -> dict[str, ActionHandler]:
    """Action name → the one handler that delivers it; two claiming one name is a config error."""
    routes: dict[str, ActionHandler] = {}
    for handler in handlers:
        for name in handler.handles:
            if name in routes:
                raise ConfigurationError(
                    f"both {routes[name].name} and {handler.name} handle {name}"
                )
            routes[name] = handler
    return routes


def default_handlers(
    settings: Settings, out: Callable[[str], None] | None, clock: Clock | None = None
) -> list[ActionHandler]:
    if settings.dry_run:
        return [ConsoleHandler(ACTION_NAMES, out)]
    chosen = vendor_handlers(settings, clock)
    if not chosen:
        raise ConfigurationError(
            "ORCH_DRY_RUN is off but neither Slack (ORCH_SLACK_BOT_TOKEN) nor PagerDuty "
            "(ORCH_PAGERDUTY_SERVICES) is configured; configure one, or set ORCH_DRY_RUN=true"
        )
    return chosen


def drill_handlers(
    settings: Settings, *, live: bool, out: Callable[[str], None] | None, clock: Clock | None = None
) -> dict[str, ActionHandler]:
    """Where a drill's actions go, before its safety guard: a simulated drill into the console
    sandbox (printed when `out` is given, never sent); a live one to the configured vendors,
    with the console standing in for whichever of them is not configured."""
    chosen = vendor_handlers(settings, clock) if live and not settings.dry_run else []
    covered = {name for handler in chosen for name in handler.handles}
    rest = ACTION_NAMES - covered
    if rest:
        chosen.append(ConsoleHandler(rest, out))
    return route_handlers(chosen)


def vendor_handlers(settings: Settings, clock: Clock | None = None) -> list[ActionHandler]:
    """The Slack and PagerDuty handlers that settings configure (either, both or none)."""
    # Imported only when configured: their clients take a good part of a second to import,
    # which every short command (metrics, evidence, incidents) would otherwise pay.
    from handlers.pagerduty import PagerDutyHandler, PagerDutyService  # noqa: PLC0415
    from handlers.slack import SlackHandler  # noqa: PLC0415
    from orchestrator.ingest.callbacks import vendor_ssl  # noqa: PLC0415

    chosen: list[ActionHandler] = []
    pagerduty: PagerDutyHandler | None = None
    if settings.pagerduty_services:
        pagerduty = PagerDutyHandler(
            {
                name: PagerDutyService(
                    service.routing_key.get_secret_value(),
                    service.escalation_policy,
                    service.schedule,
                )
                for name, service in settings.pagerduty_services.items()
            },
            api_token=_secret(settings.pagerduty_api_token),
            events_url=settings.pagerduty_events_url,
            rest_url=settings.pagerduty_api_url,
            verify=vendor_ssl(settings),
            dedup_prefix=settings.pagerduty_dedup_prefix,
            from_email=settings.pagerduty_from_email,
        )
        chosen.append(pagerduty)
    if settings.slack_bot_token is not None:
        chosen.append(
            SlackHandler(
                settings.slack_bot_token.get_secret_value(),
                base_url=settings.slack_api_url,
                oncall_emails=_oncall_emails(pagerduty) if pagerduty is not None else None,
                broadcast_channel=settings.slack_broadcast_channel,
                channel_creations_per_minute=settings.slack_channel_creations_per_minute,
                clock=clock,
            )
        )
    return chosen


def policy_defaults(settings: Settings) -> PolicyDefaults:
    commander = settings.incident_commander_service
    if commander and settings.pagerduty_services and commander not in settings.pagerduty_services:
        known = ", ".join(sorted(settings.pagerduty_services))
        raise ConfigurationError(
            f"ORCH_INCIDENT_COMMANDER_SERVICE: {commander!r} is not in "
            f"ORCH_PAGERDUTY_SERVICES ({known})"
        )
    try:
        hours = BusinessHours(timezone=settings.business_hours_timezone)
    except ValueError as err:
        raise ConfigurationError(f"ORCH_BUSINESS_HOURS_TIMEZONE: {err}") from None
    return PolicyDefaults(business_hours=hours, commander_service=commander)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _oncall_emails(
    pagerduty: PagerDutyHandler,
) -> Callable[[Mapping[str, Any]], Awaitable[list[str]]]:
    """Who to invite for `oncall`: the people on call for the services the playbook pages."""

    from handlers.pagerduty import OnCallLookupError, PagerDutyHandler  # noqa: PLC0415

    async def emails(incident: Mapping[str, Any]) -> list[str]:
        found: list[str] = []
        for service in incident.get("pagerduty_services", []):
            try:
                found += PagerDutyHandler.oncall_emails(await pagerduty.oncall(service))
            except OnCallLookupError as err:
                log.warning("no on-call for %s: %s", service, err)
        return list(dict.fromkeys(found))

    return emails


async def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    handlers: Iterable[ActionHandler] | None = None,
    out: Callable[[str], None] | None = None,
    instruments: Instruments | None = None,
) -> App:
    """Raises PlaybookLoadError before touching the database: a bad playbook set never runs."""
    clock = clock or SystemClock()
    chosen = list(handlers) if handlers is not None else default_handlers(settings, out, clock)
    publish_events = settings.kafka_bootstrap is not None
    if publish_events and not any(PUBLISH_EVENT in h.handles for h in chosen):
        assert settings.kafka_bootstrap is not None
        from orchestrator.ingest.kafka import KafkaEventPublisher  # noqa: PLC0415 - as above

        chosen.append(KafkaEventPublisher(settings.kafka_bootstrap, settings.kafka_events_topic))
    routes = route_handlers(chosen)
    playbooks = load_playbooks(settings.playbooks_dir, known_actions=frozenset(routes))
    store = SqlStore(settings.database_url)
    await store.open()
    dispatcher = Dispatcher(
        store,
        routes,
        clock,
        instruments=instruments,
        lease=dt.timedelta(seconds=settings.dispatch_lease_seconds),
    )
    pipeline = Pipeline(
        store,
        playbooks,
        clock,
        on_commit=dispatcher.wake,
        publish_events=publish_events,
        refresh_slack_summary=REFRESH_SUMMARY in routes,
        policy_defaults=policy_defaults(settings),
        instruments=instruments,
    )
    return App(settings, clock, store, playbooks, pipeline, dispatcher, routes)
