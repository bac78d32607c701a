"""Escalation policies: the snapshot an incident takes when it triggers, the severity defaults
of SPEC §8, business hours and reminders, on a manual clock."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from orchestrator.incident.engine import Decision, decide, open_incident
from orchestrator.incident.events import CommanderAssigned, NoteAdded, StatusChange, TimerFired
from orchestrator.incident.model import Actor, ActorKind, Incident, Status
from orchestrator.incident.policy import (
    PolicyDefaults,
    policy_of,
    snapshot,
    within_hours,
)
from orchestrator.ingest.alert import Alert, AlertStatus, SourceFormat
from orchestrator.playbook.loader import parse_playbook
from orchestrator.playbook.model import BusinessHours, Playbook
from orchestrator.timeline import Kind
from orchestrator.timers import Timer

T0 = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)  # a Wednesday
ALICE = Actor(ActorKind.SLACK, "U1", "alice")
BASE = """\
name: test-policy
match: ['alertname="DbDown"']
severity:
  from_label: severity
  map: {critical: SEV1, error: SEV2, warning: SEV3, info: SEV4}
title: "{{ labels.service }} down"
on_trigger:
  - pagerduty.trigger: {service: test-oncall}
  - slack.open_channel: {name: "inc-{{ incident.number }}"}
"""
OWN_POLICY = """\
escalation:
  levels:
    - {after: 5m, do: [pagerduty.escalate: {level: 2}]}
ack_timeout: 30m
reminder: {every: 30m}
"""


def playbook(extra: str = "") -> Playbook:
    parsed, problems = parse_playbook(BASE + extra, "test.yaml", {})
    assert problems == []
    assert parsed is not None
    return parsed


def alert(severity: str) -> Alert:
    return Alert(
        source=SourceFormat.NATIVE,
        id=f"a-{severity}",
        fingerprint="fp",
        status=AlertStatus.FIRING,
        labels={"alertname": "DbDown", "service": "orders", "severity": severity},
        annotations={},
        starts_at=T0,
        received_at=T0,
    )


def opened(severity: str, book: Playbook, defaults: PolicyDefaults | None = None) -> Decision:
    return open_incident(7, alert(severity), book, T0, defaults=defaults)


def fire(incident: Incident, timer: Timer, book: Playbook, at: dt.datetime) -> Decision:
    event = TimerFired(timer.key, timer.kind, timer.due_at, dict(timer.payload))
    return decide(incident, event, book, at)


def only(decision: Decision, kind: str) -> Timer:
    (timer,) = [t for t in decision.timers if t.kind == kind]
    return timer


def test_the_playbooks_own_policy_is_snapshotted() -> None:
    decision = opened("warning", playbook(OWN_POLICY))
    policy = policy_of(decision.incident, playbook())  # the playbook lost its policy since
    assert policy.source == "playbook"
    assert [level.after for level in policy.levels] == [dt.timedelta(minutes=5)]
    assert policy.ack_timeout == dt.timedelta(minutes=30)
    assert policy.describe() == (
        "5m pagerduty.escalate; ack timeout 30m; reminder every 30m (playbook)"
    )
    assert only(decision, "escalation").due_at == T0 + dt.timedelta(minutes=5)
    assert only(decision, "reminder").due_at == T0 + dt.timedelta(minutes=30)


def test_editing_the_playbook_does_not_change_a_running_escalation() -> None:
    original = playbook(OWN_POLICY)
    decision = opened("warning", original)
    edited = playbook(OWN_POLICY.replace("pagerduty.escalate: {level: 2}", "slack.post: {text: x}"))
    fired = fire(
        decision.incident, only(decision, "escalation"), edited, T0 + dt.timedelta(minutes=5)
    )
    assert [a.name for a in fired.actions] == ["pagerduty.escalate"]
    # The same for the ack timeout: the edited playbook has none, the snapshot has 30m.
    acked = decide(decision.incident, StatusChange(Status.ACKNOWLEDGED, ALICE), edited, T0)
    assert only(acked, "ack_timeout").due_at == T0 + dt.timedelta(minutes=30)


@pytest.mark.parametrize(
    ("severity", "after", "ack_timeout", "hours"),
    [
        ("critical", 5, 30, False),
        ("error", 15, 60, False),
        ("warning", 30, None, True),
    ],
)
def test_severity_defaults_when_the_playbook_says_nothing(
    severity: str, after: int, ack_timeout: int | None, hours: bool
) -> None:
    policy = snapshot(playbook(), playbook().severity_for(alert(severity).labels), PolicyDefaults())
    assert [level.after for level in policy.levels] == [dt.timedelta(minutes=after)]
    assert [step.name for step in policy.levels[0].do] == ["pagerduty.escalate", "slack.post"]
    expected = dt.timedelta(minutes=ack_timeout) if ack_timeout else None
    assert policy.ack_timeout == expected
    assert (policy.business_hours is not None) is hours
    assert policy.source.endswith("default")


def test_minor_incidents_do_not_page_by_default() -> None:
    decision = opened("info", playbook())
    policy = policy_of(decision.incident, playbook())
    assert policy.levels == []
    assert policy.ack_timeout is None
    assert decision.timers == ()


def test_major_incidents_page_the_commander_when_one_is_configured() -> None:
    defaults = PolicyDefaults(commander_service="incident-commanders")
    decision = opened("critical", playbook(), defaults)
    fired = fire(decision.incident, only(decision, "escalation"), playbook(), T0)
    paged = [a.params.get("service") for a in fired.actions if a.name == "pagerduty.trigger"]
    assert paged == ["incident-commanders"]
    minor = opened("warning", playbook(), defaults)
    policy = policy_of(minor.incident, playbook())
    assert all(step.name != "pagerduty.trigger" for step in policy.levels[0].do)


def test_sev3_waits_for_business_hours() -> None:
    friday_evening = dt.datetime(2026, 3, 6, 16, 45, tzinfo=dt.UTC)
    decision = open_incident(8, alert("warning"), playbook(), friday_evening)
    monday_nine = dt.datetime(2026, 3, 9, 9, 0, tzinfo=dt.UTC)
    assert only(decision, "escalation").due_at == monday_nine


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-03-04T10:00:00+00:00", "2026-03-04T10:00:00+00:00"),  # Wednesday, open
        ("2026-03-04T07:30:00+00:00", "2026-03-04T09:00:00+00:00"),  # before opening
        ("2026-03-04T17:00:00+00:00", "2026-03-05T09:00:00+00:00"),  # at closing
        ("2026-03-07T11:00:00+00:00", "2026-03-09T09:00:00+00:00"),  # Saturday
        # Berlin: 07:59 UTC is 08:59 local on a winter Wednesday; it opens at 08:00 UTC.
        ("2026-03-04T07:59:00+00:00", "2026-03-04T08:00:00+00:00"),
    ],
)
def test_within_hours(moment: str, expected: str) -> None:
    zone = "Europe/Berlin" if moment.startswith("2026-03-04T07:59") else "UTC"
    hours = BusinessHours(timezone=zone)
    got = within_hours(dt.datetime.fromisoformat(moment), hours)
    assert got == dt.datetime.fromisoformat(expected)


def test_bad_business_hours_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        BusinessHours(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="start must be before end"):
        BusinessHours(start=dt.time(18), end=dt.time(9))


def test_reminders_nudge_and_status_updates_reset_them() -> None:
    book = playbook(OWN_POLICY)
    decision = opened("warning", book)
    incident, reminder = decision.incident, only(decision, "reminder")
    later = T0 + dt.timedelta(minutes=30)
    nudged = fire(incident, reminder, book, later)
    assert [a.name for a in nudged.actions] == ["slack.post"]
    assert "No status update on #7" in nudged.actions[0].params["text"]
    assert only(nudged, "reminder").due_at == later + dt.timedelta(minutes=30)

    for update in (NoteAdded("replica promoted", ALICE), CommanderAssigned("U9", ALICE)):
        reset = decide(incident, update, book, later)
        assert "reminder" in reset.cancel_timer_kinds
        assert only(reset, "reminder").due_at == later + dt.timedelta(minutes=30)
        assert Kind.TIMER_SCHEDULED in [e.kind for e in reset.entries]

    resolved = dataclasses.replace(incident, status=Status.RESOLVED)
    skipped = fire(resolved, reminder, book, later)
    assert [e.kind for e in skipped.entries] == [Kind.TIMER_SKIPPED]
    assert skipped.actions == ()


def test_without_a_reminder_notes_schedule_nothing() -> None:
    decision = opened("warning", playbook())
    noted = decide(decision.incident, NoteAdded("hello", ALICE), playbook(), T0)
    assert noted.timers == ()
    assert noted.cancel_timer_kinds == frozenset()
