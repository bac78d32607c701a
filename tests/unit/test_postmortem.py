"""Postmortem drafts from a hand-built timeline, the blameless check, `required_when`, and the
action items table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from orchestrator.incident.model import SYSTEM, Actor, ActorKind, Incident, Severity, Status
from orchestrator.incident.policy import PolicyDefaults, snapshot
from orchestrator.playbook.conditions import ConditionError, Facts, parse_condition
from orchestrator.playbook.loader import (
    PlaybookLoadError,
    document_template,
    load_playbooks,
    load_templates,
)
from orchestrator.report.blameless import blame_phrases
from orchestrator.report.postmortem import (
    Delivery,
    Postmortem,
    PostmortemStatus,
    people_of,
    postmortem_context,
)
from orchestrator.report.postmortem_doc import checkable_text, render_postmortem, split_sections
from orchestrator.report.postmortem_policy import (
    incident_flags,
    overdue_postmortem,
    postmortem_required,
)
from orchestrator.timeline import Kind, TimelineEntry

SHIPPED = Path(__file__).resolve().parents[2] / "playbooks"
ALICE = Actor(ActorKind.SLACK, "U1", "alice")
BOB = Actor(ActorKind.CLI, "bob", "bob")
ALERT = Actor(ActorKind.ALERT, "alertmanager", "PostgresDown")
DISPATCHER = Actor(ActorKind.SYSTEM, "dispatcher")


def at(minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC) + dt.timedelta(
        minutes=minute, seconds=second
    )


def entries_of(*rows: tuple[Kind, dt.datetime, Actor, dict[str, Any]]) -> list[TimelineEntry]:
    return [
        TimelineEntry(7, seq, kind, actor, when, when, data, "", "")
        for seq, (kind, when, actor, data) in enumerate(rows, start=1)
    ]


LABELS = {"alertname": "PostgresDown", "service": "orders-db"}
# Impact 09:00; detected and declared 09:02; paged 09:02:05; acked 09:04; mitigated 09:20;
# resolved 09:30; a note after resolution, and bookkeeping entries the draft leaves out.
TIMELINE = entries_of(
    (Kind.ALERT_RECEIVED, at(0), ALERT, {"labels": LABELS, "summary": "primary down"}),
    (Kind.INCIDENT_TRIGGERED, at(2), SYSTEM, {"severity": "SEV2", "playbook": "database"}),
    (Kind.ACTION_SCHEDULED, at(2), SYSTEM, {"action": "pagerduty.trigger", "key": "7:0:t:0"}),
    (Kind.TIMER_SCHEDULED, at(2), SYSTEM, {"timer": "escalation", "key": "7:0:e"}),
    (Kind.ACTION_SUCCEEDED, at(2, 5), DISPATCHER, {"action": "pagerduty.trigger"}),
    (Kind.INCIDENT_ACKNOWLEDGED, at(4), ALICE, {"from": "triggered", "to": "acknowledged"}),
    (Kind.SEVERITY_CHANGED, at(5), ALICE, {"from": "SEV2", "to": "SEV1", "reason": "all shards"}),
    (Kind.COMMANDER_ASSIGNED, at(6), ALICE, {"from": "", "to": "bob"}),
    (Kind.NOTE, at(10), BOB, {"text": "failover started #data_loss"}),
    (Kind.INCIDENT_MITIGATED, at(20), BOB, {"from": "acknowledged", "to": "mitigated"}),
    (Kind.INCIDENT_RESOLVED, at(30), BOB, {"from": "mitigated", "to": "resolved"}),
    (Kind.NOTE, at(45), BOB, {"text": "after the fact"}),
    (Kind.POSTMORTEM_UPDATED, at(50), BOB, {"status": "draft"}),
)


def incident(**changes: Any) -> Incident:
    values: dict[str, Any] = {
        "number": 7,
        "title": "orders-db: database unavailable",
        "status": Status.RESOLVED,
        "severity": Severity.SEV1,
        "max_severity": Severity.SEV1,
        "playbook": "database-unavailable",
        "playbook_version": "abc123",
        "group_key": "g",
        "group_labels": {"service": "orders-db"},
        "declared_at": at(2),
        "updated_at": at(30),
        "service": "orders-db",
        "team": "data",
        "commander": "bob",
        "links": {"slack": "https://slack.example/C1"},
    }
    return Incident(**{**values, **changes})


@pytest.fixture(scope="module")
def playbooks() -> Any:
    return load_playbooks(SHIPPED)


@pytest.fixture
def context(playbooks: Any) -> dict[str, Any]:
    playbook = playbooks.get("database-unavailable")
    policy = snapshot(playbook, Severity.SEV1, PolicyDefaults()).as_json()
    deliveries = [
        Delivery(
            "pagerduty.trigger",
            {"service": "data-oncall", "urgency": "high"},
            "delivered",
            1,
            at(2, 5),
        ),
        Delivery(
            "slack.post", {"channel": "#incidents", "text": "x"}, "failed", 5, None, "rate limited"
        ),
    ]
    return postmortem_context(
        incident(policy=policy), TIMELINE, deliveries, generated_at=at(60), playbook=playbook
    )


def test_key_timestamps_and_durations(context: dict[str, Any]) -> None:
    stamps = {row["field"]: row["at"] for row in context["timestamps"]}
    assert stamps["impact_started_at"] == "2026-03-02 09:00:00 UTC"
    assert stamps["first_page_at"] == "2026-03-02 09:02:05 UTC"
    assert stamps["first_ack_at"] == "2026-03-02 09:04:00 UTC"
    assert stamps["closed_at"] == "—"
    figures = {row["short"]: row["seconds"] for row in context["durations"]}
    assert figures == {
        "TTD": 0.0,
        "TTA": 120.0,
        "TTM": 1200.0,
        "TTR": 1680.0,
        "user impact": 1800.0,
    }
    tta = next(row for row in context["durations"] if row["short"] == "TTA")
    assert tta["text"] == "2m"
    assert tta["formula"] == "first_ack_at - declared_at"


def test_timeline_runs_from_impact_to_resolution_without_bookkeeping(
    context: dict[str, Any],
) -> None:
    rows = context["timeline"]
    assert [row["kind"] for row in rows] == [
        "alert.received",
        "incident.triggered",
        "action.succeeded",
        "incident.acknowledged",
        "severity.changed",
        "commander.assigned",
        "note",
        "incident.mitigated",
        "incident.resolved",
    ]
    assert rows[0]["text"] == "alert PostgresDown firing (orders-db): primary down"
    assert rows[4]["text"] == "severity SEV2 → SEV1: all shards"
    assert [row["since_impact"] for row in (rows[0], rows[3], rows[-1])] == ["+0s", "+4m", "+30m"]


def test_responders_roles_communications_and_playbook(context: dict[str, Any]) -> None:
    people = {p["name"]: p for p in context["responders"]}
    assert people["bob"]["role"] == "incident commander"
    assert people["bob"]["did"] == "notes x2, mitigated, resolved"
    assert people["alice"] == {
        "name": "alice",
        "via": "slack",
        "first": "2026-03-02 09:04:00 UTC",
        "role": "responder",
        "did": "acknowledged, changed severity, assigned command",
    }
    page, post = context["communications"]
    assert (page["kind"], page["target"], page["status"]) == (
        "page",
        "PagerDuty data-oncall (high urgency)",
        "delivered",
    )
    assert (post["kind"], post["status"], post["error"], post["attempts"]) == (
        "message",
        "failed",
        "rate limited",
        5,
    )
    assert context["playbook"]["name"] == "database-unavailable"
    assert context["playbook"]["version"] == "abc123"
    assert context["playbook"]["changed_since"] is True
    assert "pagerduty.escalate" in context["playbook"]["policy"]
    assert context["playbook"]["required_when"] == "max_severity <= SEV2 or data_loss"
    assert context["postmortem"]["status"] == "draft"


def test_shipped_template_renders_every_section(context: dict[str, Any]) -> None:
    template = document_template(SHIPPED, "postmortem.md.j2")
    assert template is not None
    text = render_postmortem(template, context)
    titles = [section.title for section in split_sections(text)]
    assert titles == [
        "Summary",
        "Impact",
        "Key timestamps and metrics",
        "Timeline",
        "Trigger and lead-up",
        "Detection",
        "Response",
        "Recovery",
        "Responders and roles",
        "Root causes and contributing factors",
        "What went well",
        "What went poorly",
        "Where we got lucky",
        "Lessons",
        "Action items",
        "Communications",
        "Playbook",
        "Playbook changes triggered",
        "Approval",
    ]
    assert text.startswith("# Postmortem: incident #7 — orders-db: database unavailable\n")
    assert "| time to acknowledge (TTA) | 2m | first_ack_at - declared_at |" in text
    assert "| 2026-03-02 09:10:00 UTC | +10m | bob | failover started #data_loss |" in text
    assert "after the fact" not in text  # after the resolution
    assert blame_phrases(checkable_text(text)) == []  # the placeholders read blameless


def test_refresh_keeps_what_people_wrote_and_regenerates_the_rest(context: dict[str, Any]) -> None:
    template = document_template(SHIPPED, "postmortem.md.j2")
    assert template is not None
    first = render_postmortem(template, context)
    edited = (
        first.replace(
            "_What happened and what it meant for users, in two or three sentences._",
            "The orders database was down for 30 minutes.",
        )
        .replace("| 2026-03-02 09:10:00 UTC |", "| edited by hand |")
        .replace("## Approval", "## Appendix\n\nChat export attached.\n\n## Approval")
    )
    again = render_postmortem(template, context, stored=edited)
    sections = {s.key: s for s in split_sections(again)}
    assert sections["summary"].body == "The orders database was down for 30 minutes."
    assert "edited by hand" not in again  # the timeline is generated
    assert sections["appendix"].body == "Chat export attached."
    assert [s.key for s in split_sections(again)][-2:] == ["appendix", "approval"]
    html_template = document_template(SHIPPED, "postmortem.html.j2")
    page = render_postmortem(template, context, stored=edited, html_template=html_template)
    assert "<p>The orders database was down for 30 minutes.</p>" in page
    assert "<h2>Appendix</h2>" in page


def test_html_escapes_values_and_written_html() -> None:
    context = postmortem_context(
        incident(title="<script>alert(1)</script>"), TIMELINE, [], generated_at=at(60)
    )
    md = document_template(SHIPPED, "postmortem.md.j2")
    html = document_template(SHIPPED, "postmortem.html.j2")
    assert md is not None
    assert html is not None
    stored = "## Summary\n\n<img src=x onerror=alert(1)> **bold**\n"
    page = render_postmortem(md, context, stored=stored, html_template=html)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page
    assert "<strong>bold</strong>" in page


def test_document_templates_are_not_message_templates(tmp_path: Path) -> None:
    templates = load_templates(SHIPPED)
    assert "incident_summary" in templates
    assert not any(name.startswith("postmortem") for name in templates)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "postmortem.md.j2").write_text("{{ broken")
    assert document_template(tmp_path, "postmortem.md.j2") == "{{ broken"
    assert document_template(tmp_path, "postmortem.html.j2") is None


def test_loader_reports_a_bad_required_when(tmp_path: Path) -> None:
    (tmp_path / "10-a.yaml").write_text(
        "name: a\nmatch: ['alertname=\"X\"']\npostmortem: {required_when: 'max_severity <= SEV9'}\n"
    )
    with pytest.raises(PlaybookLoadError) as caught:
        load_playbooks(tmp_path)
    (problem,) = caught.value.problems
    assert problem.message == (
        "postmortem.required_when: column 17: expected a severity (SEV1 … SEV5), got 'SEV9'"
    )


# --- the blameless check ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("Bob caused the outage.", "Bob caused"),
        ("the on-call failed to page the DBA", "the on-call failed to"),
        ("Someone forgot to renew the certificate.", "Someone forgot to"),
        ("It was human error.", "human error"),
        ("We should have tested it.", "should have"),
        ("They shouldn't have deployed on Friday.", "shouldn't have"),
        ("A careless change to the config.", "careless"),
        ("It was the fault of the release process.", "fault of"),
        ("Why did @carol merge it?", "Why did @carol"),
        ("It was alice's mistake.", "alice's mistake"),
        ("The engineer is to blame.", "is to blame"),
    ],
)
def test_blame_phrases_flag(text: str, phrase: str) -> None:
    (finding,) = blame_phrases(text, names=["alice", "Bob"])
    assert finding[:2] == (1, phrase)
    assert finding[2]  # a suggestion


@pytest.mark.parametrize(
    "text",
    [
        "The deploy caused the outage.",
        "The health check failed to detect the stuck primary.",
        "Why did the failover take 20 minutes?",
        "We ran a blameless review.",
        "`bob caused` is quoted as code",
        "The alert could have fired sooner.",
    ],
)
def test_blame_phrases_leave_mechanisms_alone(text: str) -> None:
    assert blame_phrases(text, names=["bob"]) == []


def test_blame_phrases_give_lines_and_skip_code_blocks() -> None:
    text = "fine\n```\nbob caused it\n```\nBob forgot to page; human error\n"
    assert [(line, phrase) for line, phrase, _ in blame_phrases(text, ["bob"])] == [
        (5, "Bob forgot to"),
        (5, "human error"),
    ]


def test_checkable_text_skips_generated_sections_and_keeps_line_numbers() -> None:
    text = (
        "# Postmortem\n\n## Timeline\n<!-- generated -->\n| bob caused it |\n\n"
        "## Summary\n\nBob caused it.\n"
    )
    findings = blame_phrases(checkable_text(text), ["bob"])
    assert [(line, phrase) for line, phrase, _ in findings] == [(9, "Bob caused")]


# --- required_when ------------------------------------------------------------------------------


FLAGGED = Facts(Severity.SEV3, Severity.SEV3, frozenset({"data_loss"}))


@pytest.mark.parametrize(
    ("text", "sev1", "sev2", "sev3", "sev3_flagged"),
    [
        ("always", True, True, True, True),
        ("never", False, False, False, False),
        ("max_severity <= SEV2", True, True, False, False),
        ("max_severity < SEV2", True, False, False, False),
        ("max_severity == SEV3", False, False, True, True),
        ("max_severity != SEV3", True, True, False, False),
        ("max_severity >= SEV2", False, True, True, True),
        ("data_loss", False, False, False, True),
        ("max_severity <= SEV2 or data_loss", True, True, False, True),
        ("max_severity <= sev2 and not data_loss", True, True, False, False),
        ("(severity <= SEV1 or data_loss) and max_severity <= SEV3", True, False, False, True),
    ],
)
def test_required_when(text: str, sev1: bool, sev2: bool, sev3: bool, sev3_flagged: bool) -> None:
    condition = parse_condition(text)
    results = [
        condition.holds(Facts(level, level))
        for level in (Severity.SEV1, Severity.SEV2, Severity.SEV3)
    ]
    assert results == [sev1, sev2, sev3]
    assert condition.holds(FLAGGED) is sev3_flagged


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("", 1, "empty condition"),
        ("max_severity <= SEV9", 17, "expected a severity (SEV1 … SEV5), got 'SEV9'"),
        ("max_severity", 13, "max_severity needs a comparison"),
        ("max_severity = SEV2", 14, "unexpected character '='"),
        ("data_loss and", 14, "expected a flag, a comparison or '(', got the end"),
        ("(data_loss or always", 21, "expected ')', got the end"),
        ("data_loss always", 11, "expected 'and', 'or' or the end, got 'always'"),
        ("SEV2 >= max_severity", 1, "a severity goes on the right"),
        ("__import__('os')", 12, "unexpected character"),
        ("not " * 40 + "x", 129, "nested too deeply"),
    ],
)
def test_required_when_errors(text: str, column: int, reason: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    assert caught.value.column == column
    assert reason in caught.value.reason


def test_flags_come_from_labels_and_note_tags() -> None:
    flagged = incident(group_labels={"service": "orders-db", "pii": "false"})
    assert incident_flags(flagged, TIMELINE) >= {"data_loss", "service", "alertname"}
    assert "pii" not in incident_flags(flagged, TIMELINE)
    quiet = incident(max_severity=Severity.SEV4, severity=Severity.SEV4)
    condition = parse_condition("max_severity <= SEV2 or data_loss")
    assert postmortem_required(condition, quiet, TIMELINE)  # the note's #data_loss tag
    assert not postmortem_required(condition, quiet, TIMELINE[:8])


def test_overdue_counts_business_days_since_resolution() -> None:
    condition = parse_condition("always")
    resolved = incident()  # resolved Monday 2026-03-02
    monday_week = dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC)
    late = overdue_postmortem(resolved, TIMELINE, condition, None, as_of=monday_week, days=4)
    assert late is not None
    assert late.business_days == 5
    assert (
        overdue_postmortem(resolved, TIMELINE, condition, None, as_of=monday_week, days=5) is None
    )
    approved = Postmortem(7, "x", PostmortemStatus.APPROVED, at(1), "bob", "lead", at(1))
    assert (
        overdue_postmortem(resolved, TIMELINE, condition, approved, as_of=monday_week, days=0)
        is None
    )
    drill = incident(is_drill=True)
    assert overdue_postmortem(drill, TIMELINE, condition, None, as_of=monday_week, days=0) is None


def test_people_of_the_incident() -> None:
    assert people_of(incident(), TIMELINE) == ["alice", "bob"]
