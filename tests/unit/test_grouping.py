"""Grouping: the labels of a group key, and where an alert goes (join, reopen, open, orphan)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from orchestrator.incident.engine import open_incident
from orchestrator.incident.grouping import Route, group_key, group_labels, route
from orchestrator.incident.model import Incident, Status
from orchestrator.ingest.alert import Alert, AlertStatus, SourceFormat
from orchestrator.playbook.loader import parse_playbook
from orchestrator.playbook.model import Playbook

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def playbook(extra: str = "group_by: [service, cluster]\nreopen_window: 1h\n") -> Playbook:
    text = "name: grp\nmatch: ['alertname=~\".+\"']\n" + extra
    parsed, problems = parse_playbook(text, "test.yaml", {})
    assert problems == []
    assert parsed is not None
    return parsed


WINDOWED = playbook()
NO_WINDOW = playbook("group_by: [service, cluster]\n")


def alert(status: AlertStatus = AlertStatus.FIRING, **labels: str) -> Alert:
    labels = {"alertname": "DbDown", "service": "orders", "cluster": "eu", **labels}
    return Alert(
        source=SourceFormat.NATIVE,
        id=f"id-{status.value}",
        fingerprint="fp",
        status=status,
        labels=labels,
        starts_at=T0,
        received_at=T0,
    )


FIRING = alert()
RESOLVED = alert(AlertStatus.RESOLVED)


def incident(status: Status, resolved_at: dt.datetime | None = None) -> Incident:
    base = open_incident(1, FIRING, WINDOWED, T0).incident
    return dataclasses.replace(base, status=status, resolved_at=resolved_at)


# group_labels / group_key


def test_group_labels_follow_group_by_order() -> None:
    labels = {"cluster": "eu", "service": "orders", "alertname": "X", "pod": "p-1"}
    assert list(group_labels(WINDOWED, labels).items()) == [
        ("service", "orders"),
        ("cluster", "eu"),
    ]
    assert group_key(WINDOWED, labels) == 'grp{service="orders",cluster="eu"}'


def test_absent_labels_group_as_empty_strings() -> None:
    assert group_labels(WINDOWED, {"alertname": "X"}) == {"service": "", "cluster": ""}
    assert group_key(WINDOWED, {"alertname": "X"}) == 'grp{service="",cluster=""}'
    # Absent and explicitly empty are the same group, as in Alertmanager.
    assert group_key(WINDOWED, {"service": ""}) == group_key(WINDOWED, {})


def test_default_group_by_is_alertname() -> None:
    default = playbook("")
    assert default.group_by == ["alertname"]
    assert group_key(default, {"alertname": "DbDown", "service": "x"}) == 'grp{alertname="DbDown"}'


def test_ellipsis_groups_by_every_label_sorted() -> None:
    everything = playbook("group_by: ['...']\n")
    labels = {"zone": "b", "alertname": "X", "service": "orders"}
    assert list(group_labels(everything, labels)) == ["alertname", "service", "zone"]
    assert group_key(everything, labels) == 'grp{alertname="X",service="orders",zone="b"}'
    assert group_key(everything, {**labels, "pod": "p"}) != group_key(everything, labels)


def test_ellipsis_with_other_labels_is_rejected_at_load() -> None:
    _, problems = parse_playbook(
        "name: grp\nmatch: ['a=\"b\"']\ngroup_by: ['...', service]\n", "test.yaml", {}
    )
    assert [str(p) for p in problems] == [
        "test.yaml:3:1: '...' (all labels) cannot be combined with other labels"
    ]


@pytest.mark.parametrize(
    ("service", "quoted"),
    [
        ('a"b', '"a\\"b"'),
        ("a,cluster=x", '"a,cluster=x"'),
        ("a}b{", '"a}b{"'),
        ("back\\slash", '"back\\\\slash"'),
        ("line\nbreak", '"line\\nbreak"'),
        ("zürich", '"zürich"'),
    ],
)
def test_values_are_json_quoted(service: str, quoted: str) -> None:
    key = group_key(WINDOWED, {"service": service, "cluster": "eu"})
    assert key == f'grp{{service={quoted},cluster="eu"}}'


def test_quoting_keeps_keys_unambiguous() -> None:
    # Without quoting both would read `grp{service=a,cluster=b,cluster=c}`.
    one = group_key(WINDOWED, {"service": "a", "cluster": "b,cluster=c"})
    two = group_key(WINDOWED, {"service": "a,cluster=b", "cluster": "c"})
    assert one != two


def test_playbook_name_is_part_of_the_key() -> None:
    other = playbook("group_by: [service, cluster]\n").model_copy(update={"name": "other"})
    assert group_key(other, FIRING.labels) != group_key(WINDOWED, FIRING.labels)


# route()


def test_no_incident_firing_opens() -> None:
    assert route(None, FIRING, WINDOWED, T0) is Route.OPEN


def test_no_incident_resolved_is_orphan() -> None:
    assert route(None, RESOLVED, WINDOWED, T0) is Route.ORPHAN


@pytest.mark.parametrize("status", [Status.TRIGGERED, Status.ACKNOWLEDGED, Status.MITIGATED])
@pytest.mark.parametrize("alert_in", [FIRING, RESOLVED], ids=["firing", "resolved"])
def test_open_incident_is_joined(status: Status, alert_in: Alert) -> None:
    assert route(incident(status), alert_in, WINDOWED, T0) is Route.JOIN


def test_resolved_alert_on_resolved_incident_joins() -> None:
    latest = incident(Status.RESOLVED, T0)
    assert route(latest, RESOLVED, WINDOWED, T0 + dt.timedelta(days=3)) is Route.JOIN


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (dt.timedelta(0), Route.REOPEN),
        (dt.timedelta(minutes=59), Route.REOPEN),
        (dt.timedelta(hours=1), Route.REOPEN),  # the window is inclusive
        (dt.timedelta(hours=1, seconds=1), Route.OPEN),
        (dt.timedelta(days=2), Route.OPEN),
    ],
)
def test_firing_after_resolve_reopens_within_window(elapsed: dt.timedelta, expected: Route) -> None:
    latest = incident(Status.RESOLVED, T0)
    assert route(latest, FIRING, WINDOWED, T0 + elapsed) is expected


def test_without_reopen_window_a_recurrence_opens_a_new_incident() -> None:
    assert NO_WINDOW.reopen_window is None
    latest = incident(Status.RESOLVED, T0)
    assert route(latest, FIRING, NO_WINDOW, T0 + dt.timedelta(seconds=1)) is Route.OPEN


def test_resolved_incident_without_resolved_at_opens() -> None:
    assert route(incident(Status.RESOLVED, None), FIRING, WINDOWED, T0) is Route.OPEN


@pytest.mark.parametrize("status", [s for s in Status if s.is_final], ids=lambda s: s.value)
def test_final_incident_is_never_joined(status: Status) -> None:
    latest = incident(status, T0)
    assert route(latest, FIRING, WINDOWED, T0) is Route.OPEN
    assert route(latest, RESOLVED, WINDOWED, T0) is Route.ORPHAN
