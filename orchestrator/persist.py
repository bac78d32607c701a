"""Writing one decision inside the transaction that made it: the incident's new revision, its
timeline entries, the timers it cancelled and queued, and the actions it left in the outbox,
each stamped with the drill and the trace it belongs to."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from orchestrator.incident.engine import Decision
from orchestrator.incident.model import Incident
from orchestrator.instruments import traceparent
from orchestrator.lifecycle import cancelled_timer_entry, lifecycle_events, show_escalation
from orchestrator.playbook.model import Playbook
from orchestrator.store.protocols import SyncTransaction


@dataclass(frozen=True)
class Persist:
    """How a service persists: whether it publishes lifecycle events to the bus, and whether
    it keeps the Slack summary's escalation line up to date (which needs the playbook)."""

    publish_events: bool = False
    refresh_slack_summary: bool = False

    def __call__(
        self,
        tx: SyncTransaction,
        decision: Decision,
        playbook: Playbook,
        now: dt.datetime,
        *,
        new: bool,
    ) -> None:
        incident = decision.incident
        trace = traceparent()
        if new:
            if trace is not None:
                incident = dataclasses.replace(incident, trace=trace)
            tx.insert_incident(incident)
        else:
            incident = _next_revision(incident)
            tx.update_incident(incident)
        entries = list(decision.entries)
        if decision.cancel_timer_kinds:
            cancelled = tx.cancel_timers(incident.number, decision.cancel_timer_kinds, now)
            entries += [cancelled_timer_entry(timer, incident, now) for timer in cancelled]
        # Stamped on what the decision leaves for later: a drill's work stays the drill's, and
        # a firing or a delivery continues this trace. (Only when there is something to stamp:
        # replacing every action and timer was a fifth of a restart's catch-up.)
        stamp = incident.drill_id is not None or trace is not None or incident.trace is not None
        timers = list(decision.timers)
        if stamp:
            origin = incident.trace or trace
            timers = [
                dataclasses.replace(t, drill_id=incident.drill_id, trace=origin) for t in timers
            ]
        tx.queue_timers(timers)
        tx.append_timeline(incident.number, entries, now)
        actions = list(decision.actions)
        if self.publish_events:
            # In the decision's transaction: a rolled-back decision publishes nothing.
            actions += lifecycle_events(incident, entries, now)
        if self.refresh_slack_summary:
            actions = show_escalation(
                tx, incident, decision.timers, playbook, entries, actions, now, new=new
            )
        if stamp:
            actions = [
                dataclasses.replace(a, drill_id=incident.drill_id, trace=trace) for a in actions
            ]
        tx.queue_actions(actions, now)


def _next_revision(incident: Incident) -> Incident:
    return dataclasses.replace(incident, revision=incident.revision + 1)
