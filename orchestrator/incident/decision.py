"""What the engine decides, and the bookkeeping every decision carries: the Decision value,
the timeline entries for actions and timers it schedules, and small helpers both the engine
and the timer rules use. Pure."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from orchestrator.actions import Action
from orchestrator.incident.model import Actor, Incident
from orchestrator.timeline import EntryDraft, Kind
from orchestrator.timers import Timer


class TransitionError(ValueError):
    """The event is not allowed in the incident's current state; nothing was changed."""


@dataclass(frozen=True)
class Decision:
    incident: Incident
    entries: tuple[EntryDraft, ...] = ()
    actions: tuple[Action, ...] = ()
    timers: tuple[Timer, ...] = ()
    cancel_timer_kinds: frozenset[str] = frozenset()  # pending timers of these kinds are cancelled


def scheduled_entries(actions: list[Action], actor: Actor, now: dt.datetime) -> list[EntryDraft]:
    return [
        EntryDraft(Kind.ACTION_SCHEDULED, actor, now, {"key": a.key, "action": a.name})
        for a in actions
    ]


def timer_entries(timers: list[Timer], actor: Actor, now: dt.datetime) -> list[EntryDraft]:
    return [
        EntryDraft(
            Kind.TIMER_SCHEDULED,
            actor,
            now,
            {"key": t.key, "timer": t.kind, "due_at": t.due_at.isoformat(), **t.payload},
        )
        for t in timers
    ]


def finish(
    incident: Incident,
    now: dt.datetime,
    actor: Actor,
    entries: list[EntryDraft],
    actions: list[Action],
    timers: list[Timer],
    cancel: frozenset[str] = frozenset(),
) -> Decision:
    """Adds the bookkeeping entries every decision carries: actions and timers scheduled."""
    all_entries = [
        *entries,
        *scheduled_entries(actions, actor, now),
        *timer_entries(timers, actor, now),
    ]
    return Decision(
        incident=incident,
        entries=tuple(all_entries),
        actions=tuple(actions),
        timers=tuple(timers),
        cancel_timer_kinds=cancel,
    )


def bump(incident: Incident, now: dt.datetime, **changes: Any) -> Incident:
    return dataclasses.replace(incident, updated_at=now, **changes)
