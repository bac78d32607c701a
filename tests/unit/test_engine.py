"""The pure incident engine as a table: (status, event) → (status, entries, actions, timers)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from orchestrator.incident.engine import Decision, TransitionError, decide, open_incident
from orchestrator.incident.events import (
    AlertReceived,
    CommanderAssigned,
    Correction,
    NoteAdded,
    SeverityChanged,
    StatusChange,
    TimerFired,
)
from orchestrator.incident.model import Actor, ActorKind, Incident, Severity, Status
from orchestrator.ingest.alert import Alert, AlertStatus, SourceFormat
from orchestrator.playbook.loader import load_templates, parse_playbook
from orchestrator.playbook.model import Playbook
from orchestrator.timeline import Kind

SHIPPED = Path(__file__).resolve().parents[2] / "playbooks"
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(minutes=2)
ALICE = Actor(ActorKind.CLI, "alice", "alice")
NUMBER = 7

PLAYBOOK_YAML = """\
name: test-db
owner: team-test
match: ['alertname=~"Db.*"']
severity:
  from_label: severity
  map: {critical: SEV1, warning: SEV3, info: SEV4}
  default: SEV3
group_by: [service]
reopen_window: 1h
resolve: RESOLVE_MODE
title: "{{ labels.service }} down"
on_trigger:
  - pagerduty.trigger: {service: test-oncall}
  - slack.post: {text: "#{{ incident.number }} {{ incident.title }}"}
on_acknowledge:
  - pagerduty.acknowledge: {}
on_resolve:
  - pagerduty.resolve: {}
  - slack.post: {text: "Resolved after {{ incident.duration }}"}
escalation:
  levels:
    - {after: 5m, do: [pagerduty.escalate: {level: 2}]}
    - after: 15m
      do: [slack.post: {channel: "#ic", text: "unacked"}, pagerduty.escalate: {level: 3}]
  repeat: 1
ack_timeout: 30m
"""


def make_playbook(resolve: str = "all_alerts_resolved") -> Playbook:
    playbook, problems = parse_playbook(
        PLAYBOOK_YAML.replace("RESOLVE_MODE", resolve), "test.yaml", {}
    )
    assert problems == []
    assert playbook is not None
    return playbook


PLAYBOOK = make_playbook()
MANUAL = make_playbook("manual")


def alert(
    fingerprint: str = "fp-a",
    status: AlertStatus = AlertStatus.FIRING,
    severity: str = "warning",
    at: dt.datetime = T0,
) -> Alert:
    return Alert(
        source=SourceFormat.NATIVE,
        id=f"{fingerprint}-{status.value}-{at.isoformat()}",
        fingerprint=fingerprint,
        status=status,
        labels={"alertname": "DbDown", "service": "orders", "severity": severity},
        annotations={"summary": "orders db down"},
        starts_at=at,
        ends_at=at + dt.timedelta(minutes=1) if status is AlertStatus.RESOLVED else None,
        received_at=at,
    )


def opened(
    status: Status = Status.TRIGGERED, playbook: Playbook = PLAYBOOK, **changes: object
) -> Incident:
    """A SEV3 incident for `orders`, with one alert (fp-a) firing, moved to `status`."""
    incident = open_incident(NUMBER, alert(), playbook, T0).incident
    extra: dict[str, object] = {"status": status}
    if status is Status.RESOLVED:
        extra |= {"resolved_at": T0, "firing": frozenset()}
    return dataclasses.replace(incident, **(extra | changes))


def kinds(decision: Decision) -> list[str]:
    return [entry.kind.value for entry in decision.entries]


def names(decision: Decision) -> list[str]:
    return [action.name for action in decision.actions]


def timer_kinds(decision: Decision) -> list[str]:
    return [timer.kind for timer in decision.timers]


ALL_TIMERS = frozenset({"escalation", "ack_timeout", "reminder"})
SCHEDULED = "action.scheduled"
TIMER_SCHEDULED = "timer.scheduled"

VERBS = {
    "ack": Status.ACKNOWLEDGED,
    "mitigate": Status.MITIGATED,
    "resolve": Status.RESOLVED,
    "close": Status.CLOSED,
    "reopen": Status.TRIGGERED,
    "decline": Status.DECLINED,
    "merge": Status.MERGED,
    "cancel": Status.CANCELED,
}
VERB_WORDS = {
    "ack": "acknowledge",
    "mitigate": "mitigate",
    "resolve": "resolve",
    "close": "close",
    "reopen": "reopen",
    "decline": "decline",
    "merge": "merge",
    "cancel": "cancel",
}

TRIGGER_ACTIONS = ["pagerduty.trigger", "slack.post"]
RESOLVE_ACTIONS = ["pagerduty.resolve", "slack.post"]

# (from, verb) → (to, entry kinds, action names, timer kinds set, timer kinds cancelled)
ALLOWED: dict[
    tuple[Status, str], tuple[Status, list[str], list[str], list[str], frozenset[str]]
] = {
    (Status.TRIGGERED, "ack"): (
        Status.ACKNOWLEDGED,
        ["incident.acknowledged", SCHEDULED, TIMER_SCHEDULED],
        ["pagerduty.acknowledge"],
        ["ack_timeout"],
        frozenset({"escalation", "reminder"}),
    ),
    (Status.TRIGGERED, "mitigate"): (Status.MITIGATED, ["incident.mitigated"], [], [], ALL_TIMERS),
    (Status.ACKNOWLEDGED, "mitigate"): (
        Status.MITIGATED,
        ["incident.mitigated"],
        [],
        [],
        ALL_TIMERS,
    ),
    (Status.TRIGGERED, "resolve"): (
        Status.RESOLVED,
        ["incident.resolved", SCHEDULED, SCHEDULED],
        RESOLVE_ACTIONS,
        [],
        ALL_TIMERS,
    ),
    (Status.ACKNOWLEDGED, "resolve"): (
        Status.RESOLVED,
        ["incident.resolved", SCHEDULED, SCHEDULED],
        RESOLVE_ACTIONS,
        [],
        ALL_TIMERS,
    ),
    (Status.MITIGATED, "resolve"): (
        Status.RESOLVED,
        ["incident.resolved", SCHEDULED, SCHEDULED],
        RESOLVE_ACTIONS,
        [],
        ALL_TIMERS,
    ),
    (Status.RESOLVED, "close"): (Status.CLOSED, ["incident.closed"], [], [], frozenset()),
    (Status.RESOLVED, "reopen"): (
        Status.TRIGGERED,
        ["incident.reopened", SCHEDULED, SCHEDULED, TIMER_SCHEDULED],
        TRIGGER_ACTIONS,
        ["escalation"],
        frozenset(),
    ),
    (Status.TRIGGERED, "decline"): (Status.DECLINED, ["incident.declined"], [], [], ALL_TIMERS),
    (Status.ACKNOWLEDGED, "decline"): (
        Status.DECLINED,
        ["incident.declined"],
        [],
        [],
        ALL_TIMERS,
    ),
    (Status.TRIGGERED, "merge"): (Status.MERGED, ["incident.merged"], [], [], ALL_TIMERS),
    (Status.ACKNOWLEDGED, "merge"): (Status.MERGED, ["incident.merged"], [], [], ALL_TIMERS),
    (Status.MITIGATED, "merge"): (Status.MERGED, ["incident.merged"], [], [], ALL_TIMERS),
    (Status.TRIGGERED, "cancel"): (Status.CANCELED, ["incident.canceled"], [], [], ALL_TIMERS),
    (Status.ACKNOWLEDGED, "cancel"): (
        Status.CANCELED,
        ["incident.canceled"],
        [],
        [],
        ALL_TIMERS,
    ),
    (Status.MITIGATED, "cancel"): (Status.CANCELED, ["incident.canceled"], [], [], ALL_TIMERS),
}
REJECTED = [(status, verb) for status in Status for verb in VERBS if (status, verb) not in ALLOWED]


@pytest.mark.parametrize(
    ("start", "verb"), list(ALLOWED), ids=[f"{s.value}-{v}" for s, v in ALLOWED]
)
def test_allowed_transition(start: Status, verb: str) -> None:
    to, entry_kinds, actions, timers, cancelled = ALLOWED[start, verb]
    incident = opened(start)
    decision = decide(incident, StatusChange(VERBS[verb], ALICE, "because"), PLAYBOOK, NOW)
    assert decision.incident.status is to
    assert kinds(decision) == entry_kinds
    assert names(decision) == actions
    assert timer_kinds(decision) == timers
    assert decision.cancel_timer_kinds == cancelled
    first = decision.entries[0]
    assert first.actor == ALICE
    assert first.occurred_at == NOW
    assert first.data == {"from": start.value, "to": to.value, "reason": "because"}
    assert decision.incident.updated_at == NOW
    # Every scheduled action is on the timeline with its key, in order.
    scheduled = [e.data for e in decision.entries if e.kind is Kind.ACTION_SCHEDULED]
    assert scheduled == [{"key": a.key, "action": a.name} for a in decision.actions]


@pytest.mark.parametrize(("start", "verb"), REJECTED, ids=[f"{s.value}-{v}" for s, v in REJECTED])
def test_rejected_transition(start: Status, verb: str) -> None:
    incident = opened(start)
    with pytest.raises(TransitionError) as caught:
        decide(incident, StatusChange(VERBS[verb], ALICE), PLAYBOOK, NOW)
    message = str(caught.value)
    assert message.startswith(f"cannot {VERB_WORDS[verb]} incident #{NUMBER}: it is {start.value}")
    assert "only possible when" in message


def test_resolving_a_closed_incident_says_why() -> None:
    with pytest.raises(TransitionError, match=r"cannot resolve incident #7: it is closed"):
        decide(opened(Status.CLOSED), StatusChange(Status.RESOLVED, ALICE), PLAYBOOK, NOW)


def test_transition_timestamps_and_source_time() -> None:
    clicked = NOW - dt.timedelta(seconds=30)
    event = StatusChange(Status.ACKNOWLEDGED, ALICE, occurred_at=clicked)
    decision = decide(opened(), event, PLAYBOOK, NOW)
    assert decision.incident.acknowledged_at == NOW
    assert decision.entries[0].occurred_at == clicked
    mitigated = decide(decision.incident, StatusChange(Status.MITIGATED, ALICE), PLAYBOOK, NOW)
    assert mitigated.incident.mitigated_at == NOW
    resolved = decide(mitigated.incident, StatusChange(Status.RESOLVED, ALICE), PLAYBOOK, NOW)
    assert resolved.incident.resolved_at == NOW
    closed = decide(resolved.incident, StatusChange(Status.CLOSED, ALICE), PLAYBOOK, NOW)
    assert closed.incident.closed_at == NOW


def test_manual_reopen_starts_a_new_cycle_with_fresh_keys() -> None:
    decision = decide(opened(Status.RESOLVED), StatusChange(Status.TRIGGERED, ALICE), PLAYBOOK, NOW)
    assert decision.incident.cycle == 1
    assert decision.incident.resolved_at is None
    assert [a.key for a in decision.actions] == ["7:1:reopen:0", "7:1:reopen:1"]
    (timer,) = decision.timers
    assert timer.key.startswith("7:1:")
    assert timer.payload["cycle"] == 1
    assert (timer.payload["round"], timer.payload["level"]) == (0, 0)
    assert timer.due_at == NOW + dt.timedelta(minutes=5)


# Notes


@pytest.mark.parametrize("status", list(Status))
def test_note_is_allowed_in_every_status(status: Status) -> None:
    incident = opened(status)
    decision = decide(incident, NoteAdded("rolled back deploy 42", ALICE), PLAYBOOK, NOW)
    assert decision.incident.status is status
    assert kinds(decision) == ["note"]
    assert decision.entries[0].data == {"text": "rolled back deploy 42"}
    assert decision.entries[0].actor == ALICE
    assert decision.actions == ()
    assert decision.timers == ()
    assert decision.cancel_timer_kinds == frozenset()


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_note_is_rejected(text: str) -> None:
    with pytest.raises(TransitionError, match="a note needs some text"):
        decide(opened(), NoteAdded(text, ALICE), PLAYBOOK, NOW)


# Severity


def test_severity_change_keeps_the_highest_reached() -> None:
    incident = opened()
    assert incident.severity is Severity.SEV3
    raised = decide(incident, SeverityChanged(Severity.SEV1, ALICE, "customers"), PLAYBOOK, NOW)
    assert (raised.incident.severity, raised.incident.max_severity) == (
        Severity.SEV1,
        Severity.SEV1,
    )
    assert kinds(raised) == ["severity.changed"]
    assert raised.entries[0].data == {"from": "SEV3", "to": "SEV1", "reason": "customers"}
    lowered = decide(raised.incident, SeverityChanged(Severity.SEV4, ALICE), PLAYBOOK, NOW)
    assert (lowered.incident.severity, lowered.incident.max_severity) == (
        Severity.SEV4,
        Severity.SEV1,
    )


def test_severity_order_sev1_is_worst() -> None:
    assert Severity.SEV1.worst(Severity.SEV2) is Severity.SEV1
    assert Severity.SEV5.worst(Severity.SEV2) is Severity.SEV2
    assert [s.is_major for s in Severity] == [True, True, False, False, False]


def test_same_severity_is_rejected() -> None:
    with pytest.raises(TransitionError, match="already SEV3"):
        decide(opened(), SeverityChanged(Severity.SEV3, ALICE), PLAYBOOK, NOW)


@pytest.mark.parametrize("status", [s for s in Status if s.is_final])
def test_severity_of_a_final_incident_cannot_change(status: Status) -> None:
    with pytest.raises(TransitionError, match=f"it is {status.value}"):
        decide(opened(status), SeverityChanged(Severity.SEV1, ALICE), PLAYBOOK, NOW)


# Alerts


def test_firing_alert_joins_and_adds_its_fingerprint() -> None:
    decision = decide(opened(), AlertReceived(alert("fp-b")), PLAYBOOK, NOW)
    assert decision.incident.firing == {"fp-a", "fp-b"}
    assert decision.incident.status is Status.TRIGGERED
    assert kinds(decision) == ["alert.received"]
    assert decision.actions == ()
    assert decision.entries[0].data["fingerprint"] == "fp-b"


def test_resolved_alert_removes_its_fingerprint() -> None:
    incident = opened(firing=frozenset({"fp-a", "fp-b"}))
    decision = decide(incident, AlertReceived(alert("fp-a", AlertStatus.RESOLVED)), PLAYBOOK, NOW)
    assert decision.incident.firing == {"fp-b"}
    assert decision.incident.status is Status.TRIGGERED
    assert kinds(decision) == ["alert.resolved"]
    # The entry's source time is the alert's end, not its start.
    assert decision.entries[0].occurred_at == T0 + dt.timedelta(minutes=1)


@pytest.mark.parametrize("status", [Status.TRIGGERED, Status.ACKNOWLEDGED, Status.MITIGATED])
def test_last_resolved_alert_auto_resolves(status: Status) -> None:
    incident = opened(status)
    decision = decide(incident, AlertReceived(alert("fp-a", AlertStatus.RESOLVED)), PLAYBOOK, NOW)
    assert decision.incident.status is Status.RESOLVED
    assert decision.incident.firing == frozenset()
    assert kinds(decision) == ["alert.resolved", "incident.resolved", SCHEDULED, SCHEDULED]
    assert names(decision) == RESOLVE_ACTIONS
    assert decision.cancel_timer_kinds == ALL_TIMERS
    assert decision.entries[1].data["reason"] == "all alerts resolved"
    assert decision.entries[1].actor.kind is ActorKind.ALERT


def test_last_resolved_alert_does_not_resolve_a_manual_playbook() -> None:
    incident = opened(playbook=MANUAL)
    decision = decide(incident, AlertReceived(alert("fp-a", AlertStatus.RESOLVED)), MANUAL, NOW)
    assert decision.incident.status is Status.TRIGGERED
    assert decision.incident.firing == frozenset()
    assert kinds(decision) == ["alert.resolved"]
    assert decision.actions == ()


def test_firing_alert_on_resolved_incident_reopens_with_fresh_keys() -> None:
    incident = opened(Status.RESOLVED)
    later = T0 + dt.timedelta(minutes=20)
    decision = decide(incident, AlertReceived(alert("fp-c", at=later)), PLAYBOOK, NOW)
    assert decision.incident.status is Status.TRIGGERED
    assert decision.incident.cycle == incident.cycle + 1 == 1
    assert decision.incident.firing == {"fp-c"}
    assert kinds(decision) == [
        "alert.received",
        "incident.reopened",
        SCHEDULED,
        SCHEDULED,
        TIMER_SCHEDULED,
    ]
    assert names(decision) == TRIGGER_ACTIONS
    assert [a.key for a in decision.actions] == ["7:1:reopen:0", "7:1:reopen:1"]
    (timer,) = decision.timers
    assert timer.key.startswith("7:1:")
    assert timer.payload["cycle"] == 1
    assert decision.entries[1].data["reason"] == "alert fired again"


def test_reopened_keys_differ_from_first_cycle_keys() -> None:
    first = open_incident(NUMBER, alert(), PLAYBOOK, T0)
    resolved = decide(
        first.incident, AlertReceived(alert("fp-a", AlertStatus.RESOLVED)), PLAYBOOK, NOW
    )
    again = decide(resolved.incident, AlertReceived(alert("fp-a", at=NOW)), PLAYBOOK, NOW)
    keys = [a.key for d in (first, resolved, again) for a in d.actions]
    assert len(keys) == len(set(keys))
    timer_keys = [t.key for d in (first, again) for t in d.timers]
    assert len(timer_keys) == len(set(timer_keys))


def test_higher_severity_alert_raises_severity() -> None:
    decision = decide(opened(), AlertReceived(alert("fp-b", severity="critical")), PLAYBOOK, NOW)
    assert decision.incident.severity is Severity.SEV1
    assert decision.incident.max_severity is Severity.SEV1
    assert decision.incident.firing == {"fp-a", "fp-b"}
    assert kinds(decision) == ["alert.received", "severity.changed"]
    assert decision.entries[1].data == {"from": "SEV3", "to": "SEV1", "reason": "alert DbDown"}


def test_lower_severity_alert_does_not_lower_severity() -> None:
    decision = decide(opened(), AlertReceived(alert("fp-b", severity="info")), PLAYBOOK, NOW)
    assert decision.incident.severity is Severity.SEV3
    assert kinds(decision) == ["alert.received"]


@pytest.mark.parametrize("status", [s for s in Status if s.is_final])
def test_firing_alert_on_final_incident_is_rejected(status: Status) -> None:
    with pytest.raises(TransitionError, match=f"is {status.value}"):
        decide(opened(status), AlertReceived(alert("fp-b")), PLAYBOOK, NOW)


@pytest.mark.parametrize("status", [s for s in Status if s.is_final] + [Status.RESOLVED])
def test_late_resolved_alert_on_closed_incident_is_only_recorded(status: Status) -> None:
    incident = opened(status)
    decision = decide(incident, AlertReceived(alert("fp-a", AlertStatus.RESOLVED)), PLAYBOOK, NOW)
    assert decision.incident.status is status
    assert kinds(decision) == ["alert.resolved"]
    assert decision.actions == ()


# Timers


def escalation_event(
    incident: Incident, round_: int, level: int, round_start: dt.datetime = T0
) -> TimerFired:
    after = [dt.timedelta(minutes=5), dt.timedelta(minutes=15)][level]
    return TimerFired(
        key=f"{incident.number}:{incident.cycle}:esc:{round_}:{level}",
        kind="escalation",
        due_at=round_start + after,
        payload={
            "cycle": incident.cycle,
            "round": round_,
            "level": level,
            "round_start": round_start.isoformat(),
        },
    )


def test_open_incident_schedules_the_first_level() -> None:
    decision = open_incident(NUMBER, alert(), PLAYBOOK, T0)
    assert decision.incident.status is Status.TRIGGERED
    assert decision.incident.title == "orders down"
    assert kinds(decision) == [
        "alert.received",
        "incident.triggered",
        SCHEDULED,
        SCHEDULED,
        TIMER_SCHEDULED,
    ]
    assert [a.key for a in decision.actions] == ["7:0:trigger:0", "7:0:trigger:1"]
    assert decision.actions[1].params["text"] == "#7 orders down"
    (timer,) = decision.timers
    assert timer.key.startswith("7:0:")
    assert (timer.kind, timer.due_at) == ("escalation", T0 + dt.timedelta(minutes=5))
    assert timer.payload == {"cycle": 0, "round": 0, "level": 0, "round_start": T0.isoformat()}


def test_escalation_level_fires_and_schedules_the_next_level() -> None:
    incident = opened()
    event = escalation_event(incident, 0, 0)
    fired_at = T0 + dt.timedelta(minutes=5, seconds=3)
    decision = decide(incident, event, PLAYBOOK, fired_at)
    assert decision.incident.status is Status.TRIGGERED
    assert kinds(decision) == ["timer.fired", SCHEDULED, TIMER_SCHEDULED]
    assert names(decision) == ["pagerduty.escalate"]
    assert decision.actions[0].key.startswith("7:0:")
    assert decision.actions[0].params["level"] == 2
    assert decision.actions[0].params["incident"]["number"] == 7
    (timer,) = decision.timers
    assert timer.key.startswith("7:0:")
    assert timer.key != event.key
    # Levels count from the start of the round, not from when the previous level fired.
    assert timer.due_at == T0 + dt.timedelta(minutes=15)
    assert timer.payload == {"cycle": 0, "round": 0, "level": 1, "round_start": T0.isoformat()}


def test_last_level_with_repeat_schedules_the_next_round() -> None:
    incident = opened()
    event = escalation_event(incident, 0, 1)
    decision = decide(incident, event, PLAYBOOK, event.due_at)
    assert names(decision) == ["slack.post", "pagerduty.escalate"]
    keys = [a.key for a in decision.actions]
    assert all(key.startswith("7:0:") for key in keys)
    assert len(set(keys)) == 2
    (timer,) = decision.timers
    assert timer.key not in {event.key, escalation_event(incident, 0, 0).key}
    assert timer.due_at == event.due_at + dt.timedelta(minutes=5)
    assert timer.payload["round"] == 1
    assert timer.payload["level"] == 0


def test_last_level_of_the_last_round_schedules_nothing() -> None:
    incident = opened()
    round_start = T0 + dt.timedelta(minutes=15)
    event = escalation_event(incident, 1, 1, round_start)
    decision = decide(incident, event, PLAYBOOK, event.due_at)
    assert names(decision) == ["slack.post", "pagerduty.escalate"]
    assert decision.timers == ()
    assert kinds(decision) == ["timer.fired", SCHEDULED, SCHEDULED]


def test_timer_of_an_old_cycle_is_skipped() -> None:
    incident = opened(cycle=2)
    event = TimerFired(
        "7:1:esc:0:0",
        "escalation",
        T0,
        {"cycle": 1, "round": 0, "level": 0, "round_start": T0.isoformat()},
    )
    decision = decide(incident, event, PLAYBOOK, NOW)
    assert kinds(decision) == ["timer.skipped"]
    assert "reopened" in decision.entries[0].data["reason"]
    assert decision.entries[0].data["key"] == "7:1:esc:0:0"
    assert decision.actions == ()
    assert decision.timers == ()
    assert decision.incident == incident


@pytest.mark.parametrize(
    "status", [s for s in Status if s is not Status.TRIGGERED], ids=lambda s: s.value
)
def test_escalation_on_a_non_triggered_incident_is_skipped(status: Status) -> None:
    incident = opened(status)
    decision = decide(incident, escalation_event(incident, 0, 0), PLAYBOOK, NOW)
    assert kinds(decision) == ["timer.skipped"]
    assert decision.entries[0].data["reason"] == f"the incident is {status.value}"
    assert decision.actions == ()
    assert decision.incident.status is status


def ack_timeout_event(incident: Incident, set_at: dt.datetime) -> TimerFired:
    return TimerFired(
        f"{incident.number}:{incident.cycle}:ack_timeout:{set_at.strftime('%Y%m%dT%H%M%S')}",
        "ack_timeout",
        set_at + dt.timedelta(minutes=30),
        {"cycle": incident.cycle},
    )


def test_ack_timeout_returns_an_acknowledged_incident_to_triggered() -> None:
    acked = decide(opened(), StatusChange(Status.ACKNOWLEDGED, ALICE), PLAYBOOK, NOW)
    (ack_timer,) = acked.timers
    assert ack_timer.due_at == NOW + dt.timedelta(minutes=30)
    event = ack_timeout_event(acked.incident, NOW)
    assert event.key == ack_timer.key
    fired_at = event.due_at
    decision = decide(acked.incident, event, PLAYBOOK, fired_at)
    assert decision.incident.status is Status.TRIGGERED
    entry_kinds = kinds(decision)
    assert entry_kinds[0] == "timer.fired"
    assert decision.entries[1].data["from"] == "acknowledged"
    assert decision.entries[1].data["to"] == "triggered"
    assert entry_kinds[-1] == TIMER_SCHEDULED
    # Re-page: by default the pagerduty.trigger steps of on_trigger run again.
    assert names(decision) == ["pagerduty.trigger"]
    assert entry_kinds.count(SCHEDULED) == 1
    (timer,) = decision.timers
    assert timer.kind == "escalation"
    assert timer.due_at == fired_at + dt.timedelta(minutes=5)
    assert timer.payload["round_start"] == fired_at.isoformat()


def test_escalation_restarted_by_ack_timeout_has_new_keys() -> None:
    first = open_incident(NUMBER, alert(), PLAYBOOK, T0)
    (ladder,) = first.timers
    escalated = decide(
        first.incident,
        TimerFired(ladder.key, ladder.kind, ladder.due_at, dict(ladder.payload)),
        PLAYBOOK,
        ladder.due_at,
    )
    assert names(escalated) == ["pagerduty.escalate"]
    acked = decide(
        escalated.incident,
        StatusChange(Status.ACKNOWLEDGED, ALICE),
        PLAYBOOK,
        NOW + dt.timedelta(minutes=4),
    )
    timed_out = decide(
        acked.incident,
        ack_timeout_event(acked.incident, NOW + dt.timedelta(minutes=4)),
        PLAYBOOK,
        NOW + dt.timedelta(minutes=34),
    )
    (restart,) = timed_out.timers
    # The store skips a timer or action whose key it already holds: a restarted ladder that
    # reused the first run's keys would silently never escalate again.
    assert restart.key not in {t.key for d in (first, escalated) for t in d.timers}
    again = decide(
        timed_out.incident,
        TimerFired(restart.key, restart.kind, restart.due_at, dict(restart.payload)),
        PLAYBOOK,
        restart.due_at,
    )
    assert names(again) == ["pagerduty.escalate"]
    assert again.actions[0].key not in {a.key for a in escalated.actions}
    assert timed_out.actions[0].key not in {a.key for a in first.actions}


def test_every_timer_and_action_key_of_a_ladder_is_unique() -> None:
    decision = open_incident(NUMBER, alert(), PLAYBOOK, T0)
    incident = decision.incident
    timer_keys, action_keys = [], []
    pending = list(decision.timers)
    while pending:
        timer = pending.pop()
        timer_keys.append(timer.key)
        event = TimerFired(timer.key, timer.kind, timer.due_at, dict(timer.payload))
        fired = decide(incident, event, PLAYBOOK, timer.due_at)
        action_keys += [a.key for a in fired.actions]
        pending += fired.timers
    assert len(timer_keys) == 4  # two levels, repeat 1 → two rounds
    assert len(set(timer_keys)) == 4
    assert len(action_keys) == 6
    assert len(set(action_keys)) == 6


@pytest.mark.parametrize("status", [Status.TRIGGERED, Status.MITIGATED, Status.RESOLVED])
def test_ack_timeout_on_a_non_acknowledged_incident_is_skipped(status: Status) -> None:
    incident = opened(status)
    decision = decide(incident, ack_timeout_event(incident, T0), PLAYBOOK, NOW)
    assert kinds(decision) == ["timer.skipped"]
    assert decision.incident.status is status


# Purity and determinism


EVENTS = [
    AlertReceived(alert("fp-b", severity="critical")),
    AlertReceived(alert("fp-a", AlertStatus.RESOLVED)),
    StatusChange(Status.ACKNOWLEDGED, ALICE),
    StatusChange(Status.RESOLVED, ALICE, "fixed"),
    NoteAdded("looking", ALICE),
    SeverityChanged(Severity.SEV2, ALICE),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_decide_is_pure(event: object) -> None:
    incident = opened()
    before = dataclasses.replace(incident)
    first = decide(incident, event, PLAYBOOK, NOW)  # type: ignore[arg-type]
    second = decide(incident, event, PLAYBOOK, NOW)  # type: ignore[arg-type]
    assert first == second
    assert incident == before


def test_open_incident_is_deterministic() -> None:
    first = open_incident(NUMBER, alert(), PLAYBOOK, T0)
    second = open_incident(NUMBER, alert(), PLAYBOOK, T0)
    assert first == second
    assert [a.key for a in first.actions] == [f"{NUMBER}:0:trigger:{i}" for i in range(2)]


def test_action_keys_follow_incident_cycle_step_index() -> None:
    incident = opened(Status.ACKNOWLEDGED, cycle=3)
    decision = decide(incident, StatusChange(Status.RESOLVED, ALICE), PLAYBOOK, NOW)
    assert [a.key for a in decision.actions] == ["7:3:resolve:0", "7:3:resolve:1"]
    assert all(a.incident_number == NUMBER for a in decision.actions)


def test_shipped_playbook_drives_the_engine() -> None:
    path = SHIPPED / "20-database-unavailable.yaml"
    playbook, problems = parse_playbook(
        path.read_text(encoding="utf-8"), str(path), load_templates(SHIPPED)
    )
    assert problems == []
    assert playbook is not None
    critical = alert(severity="critical").model_copy(
        update={
            "labels": {
                "alertname": "PostgresDown",
                "env": "prod",
                "service": "orders-db",
                "cluster": "eu",
                "severity": "critical",
            }
        }
    )
    decision = open_incident(1, critical, playbook, T0)
    assert decision.incident.severity is Severity.SEV1
    assert names(decision) == ["pagerduty.trigger", "slack.open_channel", "slack.post"]
    assert decision.actions[1].params["name"] == "inc-1-orders-db"


def test_reopening_alert_with_higher_severity_raises_severity() -> None:
    incident = opened(Status.RESOLVED)
    decision = decide(incident, AlertReceived(alert("fp-c", severity="critical")), PLAYBOOK, NOW)
    assert decision.incident.status is Status.TRIGGERED
    assert decision.incident.severity is Severity.SEV1
    assert decision.incident.max_severity is Severity.SEV1
    assert kinds(decision)[:2] == ["alert.received", "incident.reopened"]
    assert "severity.changed" in kinds(decision)


def test_commander_is_assigned_and_handed_over() -> None:
    incident = opened(Status.ACKNOWLEDGED)
    first = decide(incident, CommanderAssigned("U123", ALICE), PLAYBOOK, NOW)
    assert first.incident.commander == "U123"
    assert kinds(first) == ["commander.assigned"]
    assert first.entries[0].data == {"from": "", "to": "U123"}
    assert first.entries[0].actor == ALICE
    handed = decide(first.incident, CommanderAssigned("U456", ALICE), PLAYBOOK, NOW)
    assert handed.entries[0].data == {"from": "U123", "to": "U456"}
    with pytest.raises(TransitionError, match="already commands"):
        decide(handed.incident, CommanderAssigned("U456", ALICE), PLAYBOOK, NOW)
    with pytest.raises(TransitionError, match="name the commander"):
        decide(incident, CommanderAssigned(" ", ALICE), PLAYBOOK, NOW)
    with pytest.raises(TransitionError, match="closed"):
        decide(opened(Status.CLOSED), CommanderAssigned("U1", ALICE), PLAYBOOK, NOW)


def test_a_correction_points_at_the_entry_it_corrects() -> None:
    incident = opened(Status.ACKNOWLEDGED)
    fix = Correction(
        4, "acked by phone at 12:03", {"occurred_at": "2026-03-01T12:03:00+00:00"}, ALICE
    )
    decision = decide(incident, fix, PLAYBOOK, NOW)
    (entry,) = decision.entries
    assert entry.kind is Kind.CORRECTION
    assert entry.actor == ALICE
    assert entry.data == {
        "corrects": 4,
        "reason": "acked by phone at 12:03",
        "changes": {"occurred_at": "2026-03-01T12:03:00+00:00"},
    }
    assert decision.incident.status is Status.ACKNOWLEDGED  # a correction changes no state
    for bad, message in [
        (Correction(0, "x", {"text": "y"}, ALICE), "by its seq"),
        (Correction(2, " ", {"text": "y"}, ALICE), "needs a reason"),
        (Correction(2, "x", {"status": "resolved"}, ALICE), "not status"),
        (Correction(2, "x", {"occurred_at": "yesterday"}, ALICE), "ISO 8601"),
        (Correction(2, "x", {"occurred_at": "2026-03-01T12:03:00"}, ALICE), "offset"),
    ]:
        with pytest.raises(TransitionError, match=message):
            decide(incident, bad, PLAYBOOK, NOW)
