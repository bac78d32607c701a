"""Drill scenario files: a complete one parses; each mistake is refused at its own line."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.drill.loader import LoadedScenario, ScenarioError, parse_scenario
from orchestrator.drill.scenario import InjectKind, Observed
from orchestrator.incident.model import Severity
from orchestrator.playbook.loader import Problem

VALID = """\
id: db-failover
title: Primary database fails over at night
classification: "EXERCISE EXERCISE EXERCISE"
description: The orders database primary goes down outside business hours.
objectives:
  - id: detect
    text: The on-call is paged and acknowledges quickly.
    controls: [SOC2:CC7.4, NIST:RS.CO-2]
    expected: [page-primary, ack]
  - id: escalate
    text: An unanswered page escalates to the secondary.
    controls: ["ISO27001:A.5.24"]
    expected: [escalate-secondary]
roles:
  facilitator: Dana Facilitator
  players:
    primary-oncall: Ana
    secondary-oncall: Ben
  unavailable:
    - role: primary-oncall
      from: 0s
      until: 20m
      reason: asleep, phone on silent
clock:
  start: "2026-03-02T18:30:00Z"
  speed: 1
duration: 2h
safety:
  slack_channels: ["#drill-*"]
  pagerduty_services: [drill-orders-db]
injects:
  - id: db-down
    at: 0s
    alert:
      labels: {alertname: PostgresDown, service: orders-db, severity: critical}
      annotations: {summary: orders-db primary is down}
  - at: 5m
    chat:
      from: Support
      text: Checkout is failing for customers.
  - at: 10m
    unavailable:
      role: secondary-oncall
      for: 10m
      reason: on a flight
  - at: 30m
    severity:
      to: SEV1
      reason: revenue impact confirmed
  - id: complaints
    at: 40m
    customer_report:
      text: Orders cannot be placed.
      customers: 12
expected:
  - id: page-primary
    action: page
    deadline: 2m
  - id: ack
    action: acknowledge
    by: primary-oncall
    deadline: 30m
    points: 2
    late_points: 1
  - id: escalate-secondary
    action: escalation
    level: 2
    deadline: 20m
    contingency:
      - id: nudge
        at: 5m
        chat:
          from: Facilitator
          text: Nobody has answered the page yet.
script:
  - role: primary-oncall
    do: acknowledge
    at: 25m
  - role: secondary-oncall
    do: note
    on:
      observed: escalation
      level: 2
    delay: 1m
    text: Looking at the replica lag now.
  - role: primary-oncall
    do: severity
    severity: SEV1
    on:
      inject: complaints
questions:
  - What slowed the acknowledgement?
  - Who should have been paged?
"""

CHAT_INJECT = """\
  - at: 5m
    chat:
      from: Support
      text: Checkout is failing for customers.
"""


def variant(old: str, new: str, text: str = VALID) -> str:
    assert text.count(old) == 1, f"{old!r} is not in the scenario exactly once"
    return text.replace(old, new)


def line_of(text: str, fragment: str) -> int:
    """The 1-based line holding `fragment`, which must be on exactly one line."""
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if fragment in line]
    assert len(lines) == 1, f"{fragment!r} is on lines {lines}"
    return lines[0]


def problems_of(text: str, folder: Path) -> list[Problem]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "scenario.yaml", folder)
    problems = caught.value.problems
    assert problems
    assert all(p.file == "scenario.yaml" for p in problems)
    return problems


def only_problem(text: str, folder: Path) -> Problem:
    problems = problems_of(text, folder)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def alertmanager(alertname: str, starts_at: str, **alert: Any) -> str:
    """One Alertmanager webhook message as a JSON line, as a recording holds it."""
    item = {
        "status": "firing",
        "labels": {"alertname": alertname, "service": "orders-db"},
        "annotations": {"summary": f"{alertname} on orders-db"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": f"{alertname.lower()}-1",
        **alert,
    }
    return json.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="' + alertname + '"}',
            "status": "firing",
            "receiver": "orchestrator",
            "groupLabels": {"alertname": alertname},
            "commonLabels": item["labels"],
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example:9093",
            "alerts": [item],
        }
    )


# A valid scenario


def test_a_complete_scenario_parses(tmp_path: Path) -> None:
    loaded = parse_scenario(VALID, "scenario.yaml", tmp_path)
    scenario = loaded.scenario
    assert scenario.id == "db-failover"
    assert scenario.clock.start == dt.datetime(2026, 3, 2, 18, 30, tzinfo=dt.UTC)
    assert scenario.clock.speed == 1.0
    assert scenario.duration == dt.timedelta(hours=2)
    assert scenario.person("secondary-oncall") == "Ben"
    assert scenario.roles.unavailable[0].until == dt.timedelta(minutes=20)
    assert [inject.kind for inject in scenario.injects] == [
        InjectKind.ALERT,
        InjectKind.CHAT,
        InjectKind.UNAVAILABLE,
        InjectKind.SEVERITY,
        InjectKind.CUSTOMER_REPORT,
    ]
    assert [inject.label(i) for i, inject in enumerate(scenario.injects)] == [
        "db-down",
        "chat@2",
        "unavailable@3",
        "severity@4",
        "complaints",
    ]
    assert scenario.injects[2].unavailable is not None
    assert scenario.injects[2].unavailable.duration == dt.timedelta(minutes=10)
    assert scenario.expected[2].action is Observed.ESCALATION
    assert scenario.expected[2].contingency[0].at == dt.timedelta(minutes=5)
    assert scenario.script[2].severity is Severity.SEV1
    assert scenario.objectives[0].controls == ["SOC2:CC7.4", "NIST:RS.CO-2"]
    assert loaded.text == VALID
    assert len(loaded.sha256) == 64
    assert loaded.recordings == {}


def test_an_unquoted_start_with_an_offset_is_read_as_utc(tmp_path: Path) -> None:
    text = variant('start: "2026-03-02T18:30:00Z"', "start: 2026-03-02T19:30:00+01:00")
    scenario = parse_scenario(text, "scenario.yaml", tmp_path).scenario
    assert scenario.clock.start == dt.datetime(2026, 3, 2, 18, 30, tzinfo=dt.UTC)
    assert scenario.clock.start.utcoffset() == dt.timedelta(0)


def test_a_recording_is_loaded_relative_to_the_scenario(tmp_path: Path) -> None:
    recording = tmp_path / "recordings" / "orders-db.jsonl"
    recording.parent.mkdir()
    lines = [
        alertmanager("PostgresDown", "2025-11-20T03:12:00Z"),
        alertmanager("PostgresReplicaLag", "2025-11-20T03:13:30Z"),
    ]
    recording.write_text("\n".join(lines) + "\n")
    text = variant(
        CHAT_INJECT,
        "  - at: 5m\n    alerts_file:\n      file: recordings/orders-db.jsonl\n"
        "      format: alertmanager\n",
    )
    loaded = parse_scenario(text, "scenario.yaml", tmp_path)
    assert loaded.scenario.injects[1].kind is InjectKind.ALERTS_FILE
    assert loaded.recordings == {"recordings/orders-db.jsonl": [line.encode() for line in lines]}


def test_a_contingency_recording_is_loaded_and_checked(tmp_path: Path) -> None:
    (tmp_path / "lag.json").write_text(alertmanager("PostgresReplicaLag", "2025-11-20T03:13:30Z"))
    contingency = """\
      - id: nudge
        at: 5m
        chat:
          from: Facilitator
          text: Nobody has answered the page yet.
"""
    text = variant(contingency, "      - at: 5m\n        alerts_file: {file: lag.json}\n")
    loaded = parse_scenario(text, "scenario.yaml", tmp_path)
    assert list(loaded.recordings) == ["lag.json"]

    missing = variant("{file: lag.json}", "{file: gone.json}", text)
    problem = only_problem(missing, tmp_path)
    assert problem.line == line_of(missing, "gone.json")
    assert "no such file 'gone.json'" in problem.message


# Broken scenarios: one test per problem, each at its line


def test_missing_required_field(tmp_path: Path) -> None:
    text = variant("    action: page\n    deadline: 2m\n", "    action: page\n")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "id: page-primary")
    assert problem.message == "expected.0.deadline: required field is missing"


def test_missing_top_level_field_points_at_the_document(tmp_path: Path) -> None:
    text = variant("title: Primary database fails over at night\n", "")
    problem = only_problem(text, tmp_path)
    assert (problem.line, problem.column) == (1, 1)
    assert problem.message == "title: required field is missing"


def test_unknown_field(tmp_path: Path) -> None:
    text = variant("    points: 2\n", "    points: 2\n    bonus: 5\n")
    problem = only_problem(text, tmp_path)
    assert (problem.line, problem.column) == (line_of(text, "bonus: 5"), 5)
    assert problem.message == "expected.1.bonus: unknown field"


def test_control_without_framework_prefix(tmp_path: Path) -> None:
    text = variant("controls: [SOC2:CC7.4,", "controls: [CC7.4,")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "controls: [CC7.4,")
    assert problem.message.startswith("objectives.0.controls.0: String should match pattern")


def test_classification_without_exercise(tmp_path: Path) -> None:
    text = variant('classification: "EXERCISE EXERCISE EXERCISE"', "classification: Drill")
    problem = only_problem(text, tmp_path)
    assert problem.line == 3
    assert 'classification: must contain "EXERCISE"' in problem.message


def test_inject_with_two_kinds(tmp_path: Path) -> None:
    text = variant(
        "  - at: 10m\n    unavailable:",
        "  - at: 10m\n    chat: {from: Ben, text: boarding now}\n    unavailable:",
    )
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "  - at: 10m")
    assert problem.message.startswith("injects.2: an inject has exactly one of alert,")
    assert problem.message.endswith("found 2")


def test_inject_with_no_kind(tmp_path: Path) -> None:
    text = variant(CHAT_INJECT, "  - at: 5m\n")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "  - at: 5m")
    assert problem.message.endswith("found 0")


def test_unknown_role_in_script(tmp_path: Path) -> None:
    text = variant(
        "  - role: primary-oncall\n    do: acknowledge", "  - role: dba\n    do: acknowledge"
    )
    problem = only_problem(text, tmp_path)
    assert (problem.line, problem.column) == (line_of(text, "role: dba"), 11)
    assert problem.message == "unknown role 'dba'; roles: primary-oncall, secondary-oncall"


def test_unknown_role_in_expected_by(tmp_path: Path) -> None:
    text = variant("    by: primary-oncall", "    by: incident-manager")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "by: incident-manager")
    assert problem.message.startswith("unknown role 'incident-manager'")


def test_unknown_role_in_roles_unavailable(tmp_path: Path) -> None:
    text = variant("    - role: primary-oncall\n      from:", "    - role: ghost\n      from:")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "- role: ghost")
    assert problem.message.startswith("unknown role 'ghost'")


def test_unknown_role_in_unavailable_inject(tmp_path: Path) -> None:
    text = variant("      role: secondary-oncall\n      for:", "      role: tertiary\n      for:")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "role: tertiary")
    assert problem.message.startswith("unknown role 'tertiary'")


def test_unavailable_until_before_from(tmp_path: Path) -> None:
    text = variant("      from: 0s\n      until: 20m", "      from: 30m\n      until: 20m")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "until: 20m")
    assert problem.message == "must be after `from`"


def test_objective_referencing_a_missing_expected_id(tmp_path: Path) -> None:
    text = variant("expected: [escalate-secondary]", "expected: [escalate-tertiary]")
    problem = only_problem(text, tmp_path)
    assert (problem.line, problem.column) == (line_of(text, "escalate-tertiary"), 16)
    assert problem.message == "no expected action 'escalate-tertiary'"


def test_duplicate_expected_id(tmp_path: Path) -> None:
    text = variant("  - id: escalate-secondary\n", "  - id: ack\n")
    text = variant("expected: [escalate-secondary]", "expected: [ack]", text)
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(VALID, "  - id: escalate-secondary")  # the second `ack`
    assert problem.message == "duplicate id 'ack'"


def test_deadline_after_duration(tmp_path: Path) -> None:
    text = variant("    deadline: 30m\n", "    deadline: 2h30m\n")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "deadline: 2h30m")
    assert problem.message == "is after the drill's duration"


def test_contingency_counts_from_its_deadline(tmp_path: Path) -> None:
    # 20m deadline + 1h45m = 2h05m, after ENDEX though 1h45m alone is within the 2h drill.
    text = variant("      - id: nudge\n        at: 5m\n", "      - id: nudge\n        at: 1h45m\n")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "at: 1h45m")
    assert problem.message == "is after the drill's duration (counted from the deadline)"


def test_level_on_a_non_escalation_expected_action(tmp_path: Path) -> None:
    text = variant("    points: 2\n", "    level: 1\n    points: 2\n")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "level: 1")
    assert problem.message == "only for `action: escalation`"


def test_scripted_response_with_both_at_and_on(tmp_path: Path) -> None:
    text = variant("    delay: 1m\n", "    delay: 1m\n    at: 10m\n")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "- role: secondary-oncall")
    assert problem.message == "script.1: a scripted response has exactly one of `at` and `on`"


def test_note_without_text(tmp_path: Path) -> None:
    text = variant("    text: Looking at the replica lag now.\n", "")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "- role: secondary-oncall")
    assert problem.message == "script.1: `do: note` needs `text`"


def test_trigger_with_both_observed_and_inject(tmp_path: Path) -> None:
    text = variant("      inject: complaints", "      observed: note\n      inject: complaints")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(VALID, "      inject: complaints") - 1  # the `on:` key
    assert problem.message == "script.2.on: a trigger has exactly one of `observed` and `inject`"


def test_trigger_on_an_unknown_inject(tmp_path: Path) -> None:
    text = variant("      inject: complaints", "      inject: complaint")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "inject: complaint")
    assert problem.message == "no inject 'complaint'"


def test_alerts_file_that_does_not_exist(tmp_path: Path) -> None:
    text = variant(CHAT_INJECT, "  - at: 5m\n    alerts_file:\n      file: recordings/none.jsonl\n")
    problem = only_problem(text, tmp_path)
    assert (problem.line, problem.column) == (line_of(text, "file: recordings/none.jsonl"), 13)
    assert problem.message == (
        "no such file 'recordings/none.jsonl' (paths are relative to the scenario)"
    )


def test_alerts_file_holding_a_message_the_intake_would_reject(tmp_path: Path) -> None:
    good = alertmanager("PostgresDown", "2025-11-20T03:12:00Z")
    bad = alertmanager("PostgresReplicaLag", "20 Nov 2025 03:13")
    (tmp_path / "night.jsonl").write_text(f"{good}\n\n{bad}\n")
    text = variant(CHAT_INJECT, "  - at: 5m\n    alerts_file: {file: night.jsonl}\n")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "night.jsonl")
    # The recording's own line (3: the blank line 2 is skipped), then the intake's reason.
    assert problem.message.startswith("night.jsonl:3: alerts[0].startsAt: ")


def test_alerts_file_holding_no_messages(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n")
    text = variant(CHAT_INJECT, "  - at: 5m\n    alerts_file: {file: empty.jsonl}\n")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "empty.jsonl")
    assert problem.message == "empty.jsonl holds no alert messages"


def test_invalid_yaml(tmp_path: Path) -> None:
    text = variant("  speed: 1\n", "  speed: 1: 2\n")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "speed: 1: 2")
    assert "mapping values are not allowed here" in problem.message


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = variant("duration: 2h\n", "duration: 2h\nduration: 3h\n")
    problem = only_problem(text, tmp_path)
    assert problem.line == line_of(text, "duration: 3h")
    assert 'found duplicate key "duration"' in problem.message


def test_not_a_mapping(tmp_path: Path) -> None:
    problem = only_problem("- just\n- a list\n", tmp_path)
    assert (problem.line, problem.message) == (1, "a drill scenario is a YAML mapping")


def test_naive_clock_start(tmp_path: Path) -> None:
    text = variant('start: "2026-03-02T18:30:00Z"', 'start: "2026-03-02T18:30:00"')
    problem = only_problem(text, tmp_path)
    assert (problem.line, problem.column) == (line_of(text, "start:"), 10)
    assert problem.message == "clock.start: needs a UTC offset, e.g. 2026-03-02T18:30:00Z"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = variant("    by: primary-oncall", "    by: manager")
    text = variant("    deadline: 30m\n", "    deadline: 3h\n", text)
    text = variant("expected: [escalate-secondary]", "expected: [nope]", text)
    problems = problems_of(text, tmp_path)
    assert sorted((p.line, p.message) for p in problems) == [
        (line_of(text, "expected: [nope]"), "no expected action 'nope'"),
        (
            line_of(text, "by: manager"),
            "unknown role 'manager'; roles: primary-oncall, secondary-oncall",
        ),
        (line_of(text, "deadline: 3h"), "is after the drill's duration"),
    ]


def test_loaded_scenario_keeps_its_hash(tmp_path: Path) -> None:
    one: LoadedScenario = parse_scenario(VALID, "a.yaml", tmp_path)
    two = parse_scenario(VALID + "# a comment\n", "a.yaml", tmp_path)
    assert one.scenario == two.scenario
    assert one.sha256 != two.sha256
