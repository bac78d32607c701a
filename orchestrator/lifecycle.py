"""Incident lifecycle events for other systems (status pages, warehouses): one per state change,
derived from the decision's timeline entries and sent through the outbox like any action."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from orchestrator.actions import Action
from orchestrator.incident.model import Actor, ActorKind, Incident
from orchestrator.incident.steps import context_for, incident_facts
from orchestrator.playbook.model import Playbook
from orchestrator.store.protocols import SyncTransaction
from orchestrator.timeline import EntryDraft, Kind
from orchestrator.timers import Timer, TimerKind

PUBLISH_EVENT = "incident.publish_event"

STATE_CHANGES = frozenset(
    {
        Kind.INCIDENT_TRIGGERED,
        Kind.INCIDENT_ACKNOWLEDGED,
        Kind.INCIDENT_MITIGATED,
        Kind.INCIDENT_RESOLVED,
        Kind.INCIDENT_CLOSED,
        Kind.INCIDENT_DECLINED,
        Kind.INCIDENT_MERGED,
        Kind.INCIDENT_CANCELED,
        Kind.INCIDENT_REOPENED,
        Kind.INCIDENT_ACK_TIMED_OUT,
        Kind.SEVERITY_CHANGED,
        Kind.COMMANDER_ASSIGNED,
    }
)
REFRESH_SUMMARY = "slack.update_summary"


def lifecycle_events(
    incident: Incident, entries: list[EntryDraft], now: dt.datetime
) -> list[Action]:
    """One event action per state-changing entry. `sequence` orders an incident's events
    (revision, then position within the decision) for consumers that must not trust arrival
    order, e.g. after a retried delivery."""
    events = []
    changes = [entry for entry in entries if entry.kind in STATE_CHANGES]
    for index, entry in enumerate(changes):
        sequence = incident.revision * 100 + index
        payload: dict[str, Any] = {
            "type": entry.kind.value,
            "incident": incident.number,
            "sequence": sequence,
            "status": incident.status.value,
            "severity": incident.severity.value,
            "max_severity": incident.max_severity.value,
            "title": incident.title,
            "playbook": incident.playbook,
            "service": incident.service,
            "team": incident.team,
            "is_drill": incident.is_drill,
            "declared_at": incident.declared_at.isoformat(),
            "occurred_at": entry.occurred_at.isoformat(),
            "recorded_at": now.isoformat(),
            "actor": entry.actor.as_dict(),
            "data": entry.data,
        }
        events.append(
            Action(
                key=f"{incident.number}:event:{sequence}",
                name=PUBLISH_EVENT,
                params=payload,
                incident_number=incident.number,
                is_drill=incident.is_drill,
            )
        )
    return events


def summary_refresh(
    incident: Incident, entries: list[EntryDraft], facts: dict[str, Any]
) -> list[Action]:
    """Keeps the incident channel's pinned summary current: one refresh per decision that
    changed the incident's state, severity or commander. The Slack handler finds the pinned
    message from the channel it opened; without a channel there is nothing to refresh."""
    if not any(entry.kind in STATE_CHANGES for entry in entries):
        return []
    return [
        Action(
            key=f"{incident.number}:summary:{incident.revision}",
            name=REFRESH_SUMMARY,
            params={"incident": facts},
            incident_number=incident.number,
            is_drill=incident.is_drill,
        )
    ]


def next_escalation(timers: Iterable[Timer]) -> dt.datetime | None:
    """When the earliest of these escalation timers is due; None without one."""
    due = [t.due_at for t in timers if t.kind == TimerKind.ESCALATION.value]
    return min(due) if due else None


def with_next_escalation(action: Action, due: dt.datetime | None) -> Action:
    """The action's incident snapshot, plus the next escalation (None: nothing pending)."""
    if "incident" not in action.params or not action.name.startswith("slack."):
        return action
    incident = {**action.params["incident"], "next_escalation": due.isoformat() if due else None}
    return dataclasses.replace(action, params={**action.params, "incident": incident})


def show_escalation(
    tx: SyncTransaction,
    incident: Incident,
    timers: Iterable[Timer],
    playbook: Playbook,
    entries: list[EntryDraft],
    actions: list[Action],
    now: dt.datetime,
    *,
    new: bool,
) -> list[Action]:
    """The pinned Slack summary shows when the next escalation is due: a new incident's
    channel opens knowing it (from the decision's `timers`), and each state change refreshes
    the summary with it."""
    if new:
        due = next_escalation(timers)
        return [with_next_escalation(action, due) for action in actions]
    facts = incident_facts(incident, playbook, context_for(incident, playbook, None, now))
    refresh = summary_refresh(incident, entries, facts)
    if refresh:
        pending = tx.pending_timers(incident.number, TimerKind.ESCALATION.value)
        refresh = [with_next_escalation(action, next_escalation(pending)) for action in refresh]
    return actions + refresh


def cancelled_timer_entry(timer: Timer, incident: Incident, now: dt.datetime) -> EntryDraft:
    return EntryDraft(
        Kind.TIMER_CANCELLED,
        Actor(ActorKind.SYSTEM, "timers"),
        now,
        {"key": timer.key, "timer": timer.kind, "reason": f"incident {incident.status.value}"},
    )
