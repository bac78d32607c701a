"""The pure incident engine: (incident, event, playbook, now) → Decision. No I/O, no clock reads."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from orchestrator.actions import Action
from orchestrator.incident.decision import (
    Decision,
    TransitionError,
    bump,
    finish,
)
from orchestrator.incident.events import (
    AlertReceived,
    CommanderAssigned,
    Correction,
    Event,
    NoteAdded,
    SeverityChanged,
    StatusChange,
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
    policy_of,
    reminder_timer,
    snapshot,
)
from orchestrator.incident.steps import context_for, render_or_keep, render_steps
from orchestrator.incident.timer_rules import on_timer, status_update
from orchestrator.ingest.alert import Alert, AlertStatus
from orchestrator.playbook.model import Playbook
from orchestrator.timeline import EntryDraft, Kind
from orchestrator.timers import Timer, TimerKind

__all__ = ["Decision", "TransitionError", "alert_entry", "decide", "open_incident"]

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


def open_incident(
    number: int,
    alert: Alert,
    playbook: Playbook,
    now: dt.datetime,
    *,
    drill_id: str | None = None,
    defaults: PolicyDefaults | None = None,
) -> Decision:
    """A new incident for a firing alert that matched `playbook` and joined nothing open. It
    takes a snapshot of its escalation policy now; later playbook edits do not change it.
    With `drill_id` it belongs to that drill run (and is flagged a drill)."""
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
        group_key=group_key(playbook, alert.labels, drill_id),
        group_labels=group_labels(playbook, alert.labels),
        declared_at=now,
        updated_at=now,
        service=alert.labels.get("service", ""),
        team=playbook.owner,
        is_drill=drill_id is not None,
        drill_id=drill_id,
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
    return finish(incident, now, actor, [alert_entry(alert), triggered], actions, timers)


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
        return status_update(noted, playbook, now)
    if isinstance(event, SeverityChanged):
        return status_update(_on_severity(incident, event, now), playbook, now)
    if isinstance(event, CommanderAssigned):
        return status_update(_on_commander(incident, event, now), playbook, now)
    if isinstance(event, Correction):
        return _on_correction(incident, event, now)
    return on_timer(incident, event, playbook, now)


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
    return Decision(bump(incident, now), (entry,))


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
    return Decision(bump(incident, now, commander=event.commander), (entry,))


def _on_alert(incident: Incident, alert: Alert, playbook: Playbook, now: dt.datetime) -> Decision:
    entries = [alert_entry(alert)]
    if alert.status is AlertStatus.FIRING:
        if incident.status is Status.RESOLVED:
            reopen = StatusChange(Status.TRIGGERED, alert_actor(alert), "alert fired again")
            decision = _on_status(incident, reopen, playbook, now, alert=alert)
            reopened = bump(decision.incident, now, firing=frozenset({alert.fingerprint}))
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
        updated = bump(incident, now, firing=firing)
        severity = playbook.severity_for(alert.labels)
        if severity.rank < incident.severity.rank:
            change = SeverityChanged(severity, alert_actor(alert), f"alert {alert.name}")
            decision = _on_severity(updated, change, now)
            return dataclasses.replace(decision, entries=(*entries, *decision.entries))
        return Decision(updated, tuple(entries))
    firing = incident.firing - {alert.fingerprint}
    updated = bump(incident, now, firing=firing)
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
    updated = bump(
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
    updated = bump(incident, now, **changes)
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
    return finish(updated, now, event.actor, [entry], actions, timers, cancel)
