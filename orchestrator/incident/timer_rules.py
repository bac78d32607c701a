"""What a timer does when it fires: the next escalation level, an ack timeout that re-pages,
a reminder when status updates stopped; and how a status update restarts the reminder. Pure:
the engine hands timer events here."""

from __future__ import annotations

import dataclasses
import datetime as dt

from orchestrator.incident.decision import Decision, bump, finish, timer_entries
from orchestrator.incident.events import TimerFired
from orchestrator.incident.model import Actor, ActorKind, Incident, Status
from orchestrator.incident.policy import (
    escalation_timer,
    ladder_id,
    policy_of,
    reminder_timer,
)
from orchestrator.incident.steps import context_for, render_steps
from orchestrator.playbook.model import Playbook
from orchestrator.timeline import EntryDraft, Kind
from orchestrator.timers import TimerKind


def _skip(incident: Incident, event: TimerFired, now: dt.datetime, reason: str) -> Decision:
    entry = EntryDraft(
        Kind.TIMER_SKIPPED,
        Actor(ActorKind.SYSTEM, "timers"),
        now,
        {"key": event.key, "timer": event.kind, "reason": reason},
    )
    return Decision(incident, (entry,))


def on_timer(
    incident: Incident, event: TimerFired, playbook: Playbook, now: dt.datetime
) -> Decision:
    actor = Actor(ActorKind.SYSTEM, "timers")
    if event.payload.get("cycle") != incident.cycle:
        return _skip(incident, event, now, "the incident was reopened since it was set")
    fired = EntryDraft(
        Kind.TIMER_FIRED,
        actor,
        now,
        {
            "key": event.key,
            "timer": event.kind,
            "due_at": event.due_at.isoformat(),
            **event.payload,
        },
    )
    if event.kind == TimerKind.ACK_TIMEOUT.value:
        if incident.status is not Status.ACKNOWLEDGED:
            return _skip(incident, event, now, f"the incident is {incident.status.value}")
        # Acknowledged but not mitigated in time: back to triggered, re-page, and the ladder
        # starts over.
        updated = bump(incident, now, status=Status.TRIGGERED)
        entry = EntryDraft(
            Kind.INCIDENT_ACK_TIMED_OUT,
            actor,
            now,
            {
                "from": incident.status.value,
                "to": Status.TRIGGERED.value,
                "reason": "acknowledged but not mitigated in time",
            },
        )
        policy = policy_of(incident, playbook)
        actions = render_steps(
            policy.on_ack_timeout,
            step_id=f"ack_timeout:{ladder_id(now)}",
            incident=updated,
            playbook=playbook,
            context=context_for(updated, playbook, None, now),
        )
        timers = escalation_timer(updated, policy, 0, 0, now)
        return finish(updated, now, actor, [fired, entry], actions, timers)
    if event.kind == TimerKind.REMINDER.value:
        return _remind(incident, playbook, now, fired)
    if incident.status is not Status.TRIGGERED:
        return _skip(incident, event, now, f"the incident is {incident.status.value}")
    policy = policy_of(incident, playbook)
    round_, level = int(event.payload["round"]), int(event.payload["level"])
    if level >= len(policy.levels):
        return _skip(incident, event, now, "its escalation policy has no such level")
    round_start = dt.datetime.fromisoformat(str(event.payload["round_start"]))
    actions = render_steps(
        policy.levels[level].do,
        step_id=f"esc:{ladder_id(round_start)}.{round_}.{level}",
        incident=incident,
        playbook=playbook,
        context=context_for(incident, playbook, None, now),
    )
    if level + 1 < len(policy.levels):
        timers = escalation_timer(incident, policy, round_, level + 1, round_start)
    elif round_ < policy.repeat:
        timers = escalation_timer(incident, policy, round_ + 1, 0, event.due_at)
    else:
        timers = []
    return finish(bump(incident, now), now, actor, [fired], actions, timers)


def _remind(
    incident: Incident, playbook: Playbook, now: dt.datetime, fired: EntryDraft
) -> Decision:
    """Nobody posted a status update for a while: nudge, and wait as long again."""
    policy = policy_of(incident, playbook)
    if policy.reminder is None or not incident.status.is_open:
        reason = f"the incident is {incident.status.value}" if policy.reminder else "no reminder"
        timer_event = TimerFired(str(fired.data["key"]), TimerKind.REMINDER.value, now, {})
        return _skip(incident, timer_event, now, reason)
    updated = bump(incident, now)
    actions = render_steps(
        policy.reminder.do,
        step_id=f"reminder:{incident.revision}",
        incident=updated,
        playbook=playbook,
        context=context_for(updated, playbook, None, now),
    )
    actor = Actor(ActorKind.SYSTEM, "timers")
    return finish(updated, now, actor, [fired], actions, reminder_timer(updated, policy, now))


def status_update(decision: Decision, playbook: Playbook, now: dt.datetime) -> Decision:
    """A note, or a change of severity or commander, is a status update: the reminder starts
    over from now."""
    policy = policy_of(decision.incident, playbook)
    timers = reminder_timer(decision.incident, policy, now)
    if not timers:
        return decision
    actor = Actor(ActorKind.SYSTEM, "timers")
    return dataclasses.replace(
        decision,
        entries=(*decision.entries, *timer_entries(timers, actor, now)),
        timers=(*decision.timers, *timers),
        cancel_timer_kinds=decision.cancel_timer_kinds | {TimerKind.REMINDER.value},
    )
