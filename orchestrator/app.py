"""The composition root: builds the store, playbooks, pipeline and dispatcher from Settings."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from handlers.console import ConsoleHandler
from orchestrator.actions import ActionHandler
from orchestrator.clock import Clock, SystemClock
from orchestrator.dispatcher import Dispatcher
from orchestrator.ingest.kafka import KafkaEventPublisher
from orchestrator.lifecycle import PUBLISH_EVENT
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.playbook.playbookset import PlaybookSet
from orchestrator.settings import Settings
from orchestrator.store.sql import SqlStore


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
        for handler in {id(h): h for h in self.handlers.values()}.values():
            close = getattr(handler, "close", None)
            if close is not None:
                await close()
        await self.store.close()


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


def default_handlers(settings: Settings, out: Callable[[str], None] | None) -> list[ActionHandler]:
    if settings.dry_run:
        return [ConsoleHandler(ACTION_NAMES, out)]
    raise ConfigurationError(
        "ORCH_DRY_RUN is off but no Slack or PagerDuty handler is configured yet; "
        "set ORCH_DRY_RUN=true"
    )


async def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    handlers: Iterable[ActionHandler] | None = None,
    out: Callable[[str], None] | None = None,
) -> App:
    """Raises PlaybookLoadError before touching the database: a bad playbook set never runs."""
    clock = clock or SystemClock()
    chosen = list(handlers) if handlers is not None else default_handlers(settings, out)
    publish_events = settings.kafka_bootstrap is not None
    if publish_events and not any(PUBLISH_EVENT in h.handles for h in chosen):
        assert settings.kafka_bootstrap is not None
        chosen.append(KafkaEventPublisher(settings.kafka_bootstrap, settings.kafka_events_topic))
    routes = route_handlers(chosen)
    playbooks = load_playbooks(settings.playbooks_dir, known_actions=frozenset(routes))
    store = SqlStore(settings.database_url)
    await store.open()
    dispatcher = Dispatcher(store, routes, clock)
    pipeline = Pipeline(
        store, playbooks, clock, on_commit=dispatcher.wake, publish_events=publish_events
    )
    return App(settings, clock, store, playbooks, pipeline, dispatcher, routes)
