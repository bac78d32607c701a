"""The pure incident engine: (incident, event, playbook, now) → Decision. No I/O, no clock reads."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from orchestrator.actions import Action
from orchestrator.incident.events import (
    AlertReceived,
    CommanderAssigned,
    Correction,
    Event,
    NoteAdded,
    SeverityChanged,
    StatusChange,
    TimerFired,
)
from orchestrator.incident.grouping import group_key, group_labels
from orchestrator.incident.model import (
    TRANSITIONS,
    Actor,
    ActorKind,
    Incident,
    Status,
)
from orchestrator.incident.policy import (
    PolicyDefaults,
    ack_timeout_timer,
    escalation_timer,
    ladder_id,
    policy_of,
    reminder_timer,
    snapshot,
)
from orchestrator.incident.steps import context_for, render_or_keep, render_steps
from orchestrator.ingest.alert import Alert, AlertStatus
from orchestrator.playbook.model import Playbook
from orchestrator.timeline import EntryDraft, Kind
from orchestrator.timers import Timer, TimerKind

STATUS_KINDS = {
    Status.ACKNOWLEDGED: Kind.INCIDENT_ACKNOWLEDGED,
    Status.MITIGATED: Kind.INCIDENT_MITIGATED,
    Status.RESOLVED: Kind.INCIDENT_RESOLVED,
    Status.CLOSED: Kind.INCIDENT_CLOSED,
    Status.DECLINED: Kind.INCIDENT_DECLINED,
    Status.MERGED: Kind.INCIDENT_MERGED,
    Status.CANCELED: Kind.INCIDENT_CANCELED,
    Status.TRIGGERED: Kind.INCIDENT_REOPENED,
}
VERBS = {
    Status.ACKNOWLEDGED: "acknowledge",
    Status.MITIGATED: "mitigate",
    Status.RESOLVED: "resolve",
    Status.CLOSED: "close",
    Status.DECLINED: "decline",
    Status.MERGED: "merge",
    Status.CANCELED: "cancel",
    Status.TRIGGERED: "reopen",
}


class TransitionError(ValueError):
    """The event is not allowed in the incident's current state; nothing was changed."""


@dataclass(frozen=True)
class Decision:
    incident: Incident
    entries: tuple[EntryDraft, ...] = ()
    actions: tuple[Action, ...] = ()
    timers: tuple[Timer, ...] = ()
    cancel_timer_kinds: frozenset[str] = frozenset()  # pending timers of these kinds are cancelled


ALL_TIMER_KINDS = frozenset(kind.value for kind in TimerKind)


def alert_actor(alert: Alert) -> Actor:
    return Actor(ActorKind.ALERT, alert.source.value, alert.name)


def alert_entry(alert: Alert) -> EntryDraft:
    kind = Kind.ALERT_RECEIVED if alert.status is AlertStatus.FIRING else Kind.ALERT_RESOLVED
    data: dict[str, Any] = {
        "alert_id": alert.id,
        "fingerprint": alert.fingerprint,
        "status": alert.status.value,
        "source": alert.source.value,
        "labels": dict(alert.labels),
        "summary": alert.summary,
        "received_at": alert.received_at.isoformat(),
    }
    occurred = alert.ends_at if alert.status is AlertStatus.RESOLVED and alert.ends_at else None
    return EntryDraft(kind, alert_actor(alert), occurred or alert.starts_at, data)


def _scheduled(actions: list[Action], actor: Actor, now: dt.datetime) -> list[EntryDraft]:
    return [
        EntryDraft(Kind.ACTION_SCHEDULED, actor, now, {"key": a.key, "action": a.name})
        for a in actions
    ]


def _timer_entries(timers: list[Timer], actor: Actor, now: dt.datetime) -> list[EntryDraft]:
    return [
        EntryDraft(
            Kind.TIMER_SCHEDULED,
            actor,
            now,
            {"key": t.key, "timer": t.kind, "due_at": t.due_at.isoformat(), **t.payload},
        )
        for t in timers
    ]


def _finish(
    incident: Incident,
    now: dt.datetime,
    actor: Actor,
    entries: list[EntryDraft],
    actions: list[Action],
    timers: list[Timer],
    cancel: frozenset[str] = frozenset(),
) -> Decision:
    """Adds the bookkeeping entries every decision carries: actions and timers scheduled."""
    all_entries = [*entries, *_scheduled(actions, actor, now), *_timer_entries(timers, actor, now)]
    return Decision(
        incident=incident,
        entries=tuple(all_entries),
        actions=tuple(actions),
        timers=tuple(timers),
        cancel_timer_kinds=cancel,
    )


def open_incident(
    number: int,
    alert: Alert,
    playbook: Playbook,
    now: dt.datetime,
    *,
    is_drill: bool = False,
    defaults: PolicyDefaults | None = None,
) -> Decision:
    """A new incident for a firing alert that matched `playbook` and joined nothing open. It
    takes a snapshot of its escalation policy now; later playbook edits do not change it."""
    severity = playbook.severity_for(alert.labels)
    policy = snapshot(playbook, severity, defaults or PolicyDefaults())
    incident = Incident(
        number=number,
        title="",
        status=Status.TRIGGERED,
        severity=severity,
        max_severity=severity,
        playbook=playbook.name,
        playbook_version=playbook.version,
        group_key=group_key(playbook, alert.labels),
        group_labels=group_labels(playbook, alert.labels),
        declared_at=now,
        updated_at=now,
        service=alert.labels.get("service", ""),
        team=playbook.owner,
        is_drill=is_drill,
        firing=frozenset({alert.fingerprint}),
        policy=policy.as_json(),
    )
    context = context_for(incident, playbook, alert, now)
    title, title_error = render_or_keep(playbook.title, context, mrkdwn=False)
    summary, _ = render_or_keep(playbook.summary, context, mrkdwn=False)
    incident = dataclasses.replace(incident, title=title[:200], summary=summary[:2000])
    context = context_for(incident, playbook, alert, now)
    actor = Actor(ActorKind.PLAYBOOK, playbook.name)
    triggered = EntryDraft(
        Kind.INCIDENT_TRIGGERED,
        actor,
        now,
        {
            "title": incident.title,
            "severity": severity.value,
            "playbook": playbook.name,
            "playbook_version": playbook.version,
            "group_key": incident.group_key,
            "alert_id": alert.id,
            "impact_started_at": alert.starts_at.isoformat(),
            **({"title_error": title_error} if title_error else {}),
        },
    )
    actions = render_steps(
        playbook.on_trigger,
        step_id="trigger",
        incident=incident,
        playbook=playbook,
        context=context,
    )
    timers = escalation_timer(incident, policy, 0, 0, now) + reminder_timer(incident, policy, now)
    return _finish(incident, now, actor, [alert_entry(alert), triggered], actions, timers)


def decide(incident: Incident, event: Event, playbook: Playbook, now: dt.datetime) -> Decision:
    """What `event` does to `incident`; raises TransitionError if it is not allowed now."""
    if isinstance(event, AlertReceived):
        return _on_alert(incident, event.alert, playbook, now)
    if isinstance(event, StatusChange):
        return _on_status(incident, event, playbook, now)
    if isinstance(event, NoteAdded):
        if not event.text.strip():
            raise TransitionError("a note needs some text")
        entry = EntryDraft(Kind.NOTE, event.actor, event.occurred_at or now, {"text": event.text})
        noted = Decision(dataclasses.replace(incident, updated_at=now), (entry,))
        return _status_update(noted, playbook, now)
    if isinstance(event, SeverityChanged):
        return _status_update(_on_severity(incident, event, now), playbook, now)
    if isinstance(event, CommanderAssigned):
        return _status_update(_on_commander(incident, event, now), playbook, now)
    if isinstance(event, Correction):
        return _on_correction(incident, event, now)
    return _on_timer(incident, event, playbook, now)


CORRECTABLE = frozenset({"occurred_at", "text", "reason"})


def _on_correction(incident: Incident, event: Correction, now: dt.datetime) -> Decision:
    if event.seq < 1:
        raise TransitionError("name the entry to correct by its seq (1 or more)")
    if not event.reason.strip():
        raise TransitionError("a correction needs a reason")
    unknown = sorted(set(event.changes) - CORRECTABLE)
    if unknown or not event.changes:
        raise TransitionError(
            f"correct one of {', '.join(sorted(CORRECTABLE))}"
            + (f"; not {', '.join(unknown)}" if unknown else "")
        )
    if "occurred_at" in event.changes:
        try:
            when = dt.datetime.fromisoformat(event.changes["occurred_at"])
        except ValueError:
            raise TransitionError("occurred_at: give an ISO 8601 time with its offset") from None
        if when.tzinfo is None:
            raise TransitionError("occurred_at: give the time zone offset, e.g. +00:00")
    entry = EntryDraft(
        Kind.CORRECTION,
        event.actor,
        now,
        {"corrects": event.seq, "reason": event.reason, "changes": dict(event.changes)},
    )
    return Decision(_bump(incident, now), (entry,))


def _on_commander(incident: Incident, event: CommanderAssigned, now: dt.datetime) -> Decision:
    if incident.status.is_final:
        raise TransitionError(f"incident #{incident.number} is {incident.status.value}")
    if not event.commander.strip():
        raise TransitionError("name the commander")
    if event.commander == incident.commander:
        raise TransitionError(f"{event.commander} already commands incident #{incident.number}")
    entry = EntryDraft(
        Kind.COMMANDER_ASSIGNED,
        event.actor,
        event.occurred_at or now,
        {"from": incident.commander, "to": event.commander},
    )
    return Decision(_bump(incident, now, commander=event.commander), (entry,))


def _bump(incident: Incident, now: dt.datetime, **changes: Any) -> Incident:
    return dataclasses.replace(incident, updated_at=now, **changes)


def _on_alert(incident: Incident, alert: Alert, playbook: Playbook, now: dt.datetime) -> Decision:
    entries = [alert_entry(alert)]
    if alert.status is AlertStatus.FIRING:
        if incident.status is Status.RESOLVED:
            reopen = StatusChange(Status.TRIGGERED, alert_actor(alert), "alert fired again")
            decision = _on_status(incident, reopen, playbook, now, alert=alert)
            reopened = _bump(decision.incident, now, firing=frozenset({alert.fingerprint}))
            entries += decision.entries
            severity = playbook.severity_for(alert.labels)
            if severity.rank < reopened.severity.rank:
                change = SeverityChanged(severity, alert_actor(alert), f"alert {alert.name}")
                raised = _on_severity(reopened, change, now)
                reopened, entries = raised.incident, [*entries, *raised.entries]
            return dataclasses.replace(decision, incident=reopened, entries=tuple(entries))
        if not incident.status.is_open:
            raise TransitionError(f"incident #{incident.number} is {incident.status.value}")
        firing = incident.firing | {alert.fingerprint}
        updated = _bump(incident, now, firing=firing)
        severity = playbook.severity_for(alert.labels)
        if severity.rank < incident.severity.rank:
            change = SeverityChanged(severity, alert_actor(alert), f"alert {alert.name}")
            decision = _on_severity(updated, change, now)
            return dataclasses.replace(decision, entries=(*entries, *decision.entries))
        return Decision(updated, tuple(entries))
    firing = incident.firing - {alert.fingerprint}
    updated = _bump(incident, now, firing=firing)
    if firing or playbook.resolve != "all_alerts_resolved" or not incident.status.is_open:
        return Decision(updated, tuple(entries))
    resolve = StatusChange(Status.RESOLVED, alert_actor(alert), "all alerts resolved")
    decision = _on_status(updated, resolve, playbook, now, alert=alert)
    return dataclasses.replace(decision, entries=(*entries, *decision.entries))


def _on_severity(incident: Incident, event: SeverityChanged, now: dt.datetime) -> Decision:
    if incident.status.is_final:
        raise TransitionError(
            f"cannot change the severity of incident #{incident.number}: "
            f"it is {incident.status.value}"
        )
    if event.severity is incident.severity:
        raise TransitionError(f"incident #{incident.number} is already {event.severity.value}")
    updated = _bump(
        incident,
        now,
        severity=event.severity,
        max_severity=incident.max_severity.worst(event.severity),
    )
    entry = EntryDraft(
        Kind.SEVERITY_CHANGED,
        event.actor,
        event.occurred_at or now,
        {"from": incident.severity.value, "to": event.severity.value, "reason": event.reason},
    )
    return Decision(updated, (entry,))


def _on_status(
    incident: Incident,
    event: StatusChange,
    playbook: Playbook,
    now: dt.datetime,
    *,
    alert: Alert | None = None,
) -> Decision:
    target = event.to
    if incident.status not in TRANSITIONS[target]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[target]))
        raise TransitionError(
            f"cannot {VERBS[target]} incident #{incident.number}: it is {incident.status.value}"
            f" (only possible when {allowed})"
        )
    changes: dict[str, Any] = {"status": target}
    actions: list[Action] = []
    timers: list[Timer] = []
    cancel: frozenset[str] = frozenset()
    step_id = VERBS[target]
    if target is Status.ACKNOWLEDGED:
        changes["acknowledged_at"] = incident.acknowledged_at or now
        cancel = frozenset({TimerKind.ESCALATION.value, TimerKind.REMINDER.value})
    elif target is Status.MITIGATED:
        changes["mitigated_at"] = now
        cancel = ALL_TIMER_KINDS
    elif target is Status.RESOLVED:
        changes["resolved_at"] = now
        cancel = ALL_TIMER_KINDS
    elif target is Status.CLOSED:
        changes["closed_at"] = now
    elif target is Status.TRIGGERED:
        changes.update(
            cycle=incident.cycle + 1, resolved_at=None, mitigated_at=None, acknowledged_at=None
        )
    else:
        cancel = ALL_TIMER_KINDS
    updated = _bump(incident, now, **changes)
    context = context_for(updated, playbook, alert, now)
    policy = policy_of(incident, playbook)
    if target is Status.ACKNOWLEDGED:
        steps = playbook.on_acknowledge
        timers = ack_timeout_timer(updated, policy, now)
    elif target is Status.RESOLVED:
        steps = playbook.on_resolve
    elif target is Status.TRIGGERED:
        # Reopening restarts the policy the incident triggered with.
        steps = playbook.on_trigger if playbook.on_reopen is None else playbook.on_reopen
        timers = escalation_timer(updated, policy, 0, 0, now)
    else:
        steps = []
    timers += reminder_timer(updated, policy, now)  # a status change is a status update
    actions = render_steps(
        steps, step_id=step_id, incident=updated, playbook=playbook, context=context
    )
    data: dict[str, Any] = {"from": incident.status.value, "to": target.value}
    if event.reason:
        data["reason"] = event.reason
    entry = EntryDraft(STATUS_KINDS[target], event.actor, event.occurred_at or now, data)
    return _finish(updated, now, event.actor, [entry], actions, timers, cancel)


def _skip(incident: Incident, event: TimerFired, now: dt.datetime, reason: str) -> Decision:
    entry = EntryDraft(
        Kind.TIMER_SKIPPED,
        Actor(ActorKind.SYSTEM, "timers"),
        now,
        {"key": event.key, "timer": event.kind, "reason": reason},
    )
    return Decision(incident, (entry,))


def _on_timer(
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
        updated = _bump(incident, now, status=Status.TRIGGERED)
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
        return _finish(updated, now, actor, [fired, entry], actions, timers)
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
    return _finish(_bump(incident, now), now, actor, [fired], actions, timers)


def _remind(
    incident: Incident, playbook: Playbook, now: dt.datetime, fired: EntryDraft
) -> Decision:
    """Nobody posted a status update for a while: nudge, and wait as long again."""
    policy = policy_of(incident, playbook)
    if policy.reminder is None or not incident.status.is_open:
        reason = f"the incident is {incident.status.value}" if policy.reminder else "no reminder"
        timer_event = TimerFired(str(fired.data["key"]), TimerKind.REMINDER.value, now, {})
        return _skip(incident, timer_event, now, reason)
    updated = _bump(incident, now)
    actions = render_steps(
        policy.reminder.do,
        step_id=f"reminder:{incident.revision}",
        incident=updated,
        playbook=playbook,
        context=context_for(updated, playbook, None, now),
    )
    actor = Actor(ActorKind.SYSTEM, "timers")
    return _finish(updated, now, actor, [fired], actions, reminder_timer(updated, policy, now))


def _status_update(decision: Decision, playbook: Playbook, now: dt.datetime) -> Decision:
    """A note, or a change of severity or commander, is a status update: the reminder starts
    over from now."""
    policy = policy_of(decision.incident, playbook)
    timers = reminder_timer(decision.incident, policy, now)
    if not timers:
        return decision
    actor = Actor(ActorKind.SYSTEM, "timers")
    return dataclasses.replace(
        decision,
        entries=(*decision.entries, *_timer_entries(timers, actor, now)),
        timers=(*decision.timers, *timers),
        cancel_timer_kinds=decision.cancel_timer_kinds | {TimerKind.REMINDER.value},
    )
