"""`orchestrator config check`: the settings validated, and every connection they describe
tried (the database, the playbooks against the configured handlers, Kafka, Slack, PagerDuty),
each with exactly what is wrong. Nothing is sent that someone would notice: no page, no post."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from orchestrator.app import (
    ConfigurationError,
    close_handlers,
    default_handlers,
    policy_defaults,
)
from orchestrator.playbook.loader import PlaybookLoadError, load_playbooks
from orchestrator.settings import Settings
from orchestrator.store.engine import head_revision, schema_revision


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


async def check_configuration(settings: Settings) -> list[Check]:
    checks = [await _database(settings)]
    try:
        policy_defaults(settings)
        handlers = default_handlers(settings, None)
    except (ConfigurationError, ValueError) as err:
        return [*checks, Check("handlers", False, str(err))]
    try:
        checks.append(Check("handlers", True, ", ".join(h.name for h in handlers)))
        checks.append(_playbooks(settings, frozenset(n for h in handlers for n in h.handles)))
        checks += await _kafka(settings)
        for handler in handlers:
            check = getattr(handler, "check", None)
            if check is not None:
                checks += [Check(handler.name, ok, detail) for ok, detail in await check()]
    finally:
        await close_handlers(handlers)
    return checks


async def _database(settings: Settings) -> Check:
    head = head_revision()
    try:
        found = await asyncio.to_thread(schema_revision, settings.database_url)
    except Exception as err:  # the driver's own error says what: refused, no such database...
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        return Check("database", False, f"cannot connect: {reason}")
    if found is None:
        return Check("database", True, f"empty: the first run creates the schema ({head})")
    if found == head:
        return Check("database", True, f"schema at {head}, the newest")
    if found < head:
        return Check("database", True, f"schema at {found}: the next start migrates it to {head}")
    return Check("database", False, f"schema at {found}, newer than this version knows ({head})")


def _playbooks(settings: Settings, known: frozenset[str]) -> Check:
    try:
        found = load_playbooks(settings.playbooks_dir, known_actions=known)
    except PlaybookLoadError as err:
        return Check("playbooks", False, "; ".join(str(p) for p in err.problems))
    return Check("playbooks", True, f"{len(found)} loaded from {settings.playbooks_dir}")


async def _kafka(settings: Settings) -> list[Check]:
    if not settings.kafka_bootstrap:
        return [Check("kafka", True, "not configured: alerts come by HTTP or the CLI")]
    from orchestrator.ingest.kafka import kafka_problems  # noqa: PLC0415 - aiokafka is slow

    topics = list(settings.kafka_topic_formats())
    problems = await kafka_problems(settings.kafka_bootstrap, topics)
    if problems:
        return [Check("kafka", False, problem) for problem in problems]
    return [Check("kafka", True, f"{settings.kafka_bootstrap}: topics {', '.join(topics)}")]
