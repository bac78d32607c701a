"""The after-action report of a drill run, from a hand-built run record: its context, the
shipped Markdown and HTML templates, offsets, and the corrective actions it proposes."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest

from orchestrator.drill.record import DrillRun, LogLine, Mode, Observation, RunState, Score
from orchestrator.report.action_items import ActionItem, ActionItemStatus, ActionItemType
from orchestrator.report.drill_report import (
    drill_report_context,
    format_offset,
    proposed_corrective_actions,
    render_drill_report,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "playbooks" / "templates"
MD = (TEMPLATES / "drill-report.md.j2").read_text(encoding="utf-8")
HTML = (TEMPLATES / "drill-report.html.j2").read_text(encoding="utf-8")

CLOCK = dt.datetime(2026, 3, 2, 18, 30, tzinfo=dt.UTC)  # scenario time at offset 0
WALL = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)  # when the drill was run
BANNER = "EXERCISE EXERCISE EXERCISE"
SCRIPT = "<script>alert('pwned')</script>"
SCENARIO = """\
id: db-failover
title: Primary database lost at the evening peak
classification: EXERCISE EXERCISE EXERCISE
# (the rest of the scenario file)
"""


def at(offset: float) -> str:
    return (CLOCK + dt.timedelta(seconds=offset)).isoformat()


def line(offset: float, kind: str, text: str, ref: str = "") -> dict[str, Any]:
    return LogLine(offset, at(offset), kind, text, ref).as_json()


def score(
    id: str,
    action: str,
    by: str | None,
    deadline: float,
    observed: float | None,
    points: int,
    max_points: int,
    contingency: bool = False,
) -> dict[str, Any]:
    met = observed is not None and observed <= deadline
    return Score(id, action, by, deadline, observed, met, points, max_points, contingency).as_json()


RESULT: dict[str, Any] = {
    "scenario": {
        "id": "db-failover",
        "title": "Primary database lost at the evening peak",
        "classification": BANNER,
        "description": "The orders database primary fails during the evening peak.",
    },
    "participants": {
        "facilitator": "Fatima Haddad",
        "players": {
            "primary-oncall": "Ana Silva",
            "incident-commander": "Ben Okafor",
            "comms-lead": "Chen Wu",
        },
        "unavailable": [
            {
                "role": "primary-oncall",
                "person": "Ana Silva",
                "from": 300.0,
                "until": 900.0,
                "reason": "on a flight",
            }
        ],
    },
    "clock": {"start": CLOCK.isoformat(), "speed": None, "duration": 3600.0},
    "incidents": [41],
    "log": [
        line(0, "inject", "alert PostgresDown firing (orders-db)", "db-down"),
        line(12, "observed", "page delivered to PagerDuty orders-db", "page"),
        line(15, "observed", "channel #drill-inc-41 opened", "channel"),
        line(270, "response", "Ben Okafor acknowledged #41", "ack"),
        line(300, "inject", "primary-oncall unavailable: on a flight", "flight"),
        line(600, "skipped", "commander was not assigned by +10m", "commander"),
        line(600, "contingency", "chat from Dana (support): is anyone on orders?", "commander"),
        line(620, "refused", f"#general is outside the drill {SCRIPT} | pipe", "slack.post"),
        line(840, "response", "Chen Wu posted a status update", "status-note"),
        line(900, "observed", "escalation level 2 fired", "escalation"),
        line(1500, "response", "Ana Silva mitigated #41", "mitigate"),
        line(3600, "control", "ENDEX (schedule)"),
    ],
    "observations": [
        Observation("page", 12, at(12), 41, "pagerduty", None, service="orders-db").as_json(),
        Observation("acknowledge", 270, at(270), 41, "Ben Okafor", "incident-commander").as_json(),
        Observation("mitigate", 1500, at(1500), 41, "Ana Silva", "primary-oncall").as_json(),
    ],
    "scores": [
        score("page", "page", None, 60, 12, 1, 1),
        score("ack", "acknowledge", "incident-commander", 300, 270, 2, 2),
        score("commander", "commander", "incident-commander", 600, None, 0, 2, contingency=True),
        score("status-note", "note", "comms-lead", 900, 840, 1, 1),
        score("mitigate", "mitigate", "primary-oncall", 1200, 1500, 1, 3),
    ],
    "objectives": [
        {
            "id": "detect",
            "text": "Detect and page within a minute",
            "controls": ["SOC2:CC7.3"],
            "expected": ["page", "ack"],
            "rating": "met",
        },
        {
            "id": "command",
            "text": "Establish command and mitigate",
            "controls": ["SOC2:CC7.4", "NIST:RS.CO-2"],
            "expected": ["commander", "mitigate"],
            "rating": "not met",
        },
        {
            "id": "vendor",
            "text": "Discuss when to call the database vendor",
            "controls": ["ISO27001:A.5.24"],
            "expected": [],
            "rating": "not rated",
        },
    ],
    "score": {"points": 5, "max": 9},
    "playbooks": {"pages": 1, "channels": 1, "escalations": 1, "refused": 1},
    "refusals": [{"offset": 620.0, "action": "slack.post", "reason": "#general is outside"}],
    "questions": ["What slowed the handover of command?", "Who else should have been paged?"],
    "corrective_actions": [12],
    "endex": {"at": at(3600), "offset": 3600.0, "by": "schedule"},
}


def run_of(result: dict[str, Any] | None = None) -> DrillRun:
    return DrillRun(
        id="db-failover-1",
        scenario_id="db-failover",
        title="Primary database lost at the evening peak",
        scenario_sha256=hashlib.sha256(SCENARIO.encode()).hexdigest(),
        scenario=SCENARIO,
        mode=Mode.SIMULATED,
        state=RunState.ENDED,
        started_at=WALL,
        clock_start=CLOCK,
        ended_at=WALL + dt.timedelta(minutes=2),
        result=RESULT if result is None else result,
    )


ITEMS = [
    ActionItem(
        id=12,
        incident_number=41,
        title="Drill db-failover-1: commander by incident-commander was missed (deadline +10m)",
        owner="Ben Okafor",
        due=dt.date(2026, 3, 24),
        type=ActionItemType.PROCESS,
        status=ActionItemStatus.OPEN,
        created_at=WALL,
    )
]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "+0s"),
        (270, "+4m30s"),
        (3725, "+1h2m5s"),
        (600, "+10m"),
        (3600, "+1h"),
        (3605, "+1h0m5s"),
        (59.6, "+1m"),
        (12.2, "+12s"),
        (-90, "-1m30s"),
        (90000, "+25h"),
    ],
)
def test_offsets(seconds: float, text: str) -> None:
    assert format_offset(seconds) == text


def test_the_context_has_the_figures() -> None:
    context = drill_report_context(run_of(), ITEMS)
    assert context["banner"] == BANNER
    assert context["run"]["id"] == "db-failover-1"
    assert context["run"]["incidents"] == [41]
    assert context["mode"] == "simulated"
    assert context["scenario_sha256"] == hashlib.sha256(SCENARIO.encode()).hexdigest()
    assert context["started_at"] == "2026-03-10 14:00:00 UTC"
    assert context["ended_at"] == "2026-03-10 14:02:00 UTC"
    assert context["score"] == {"points": 5, "max": 9, "percent": 56}
    assert context["outcomes"] == {"met": 3, "late": 1, "missed": 1}
    assert context["facilitator"] == "Fatima Haddad"
    assert context["players"][0] == {
        "role": "primary-oncall",
        "person": "Ana Silva",
        "unavailable": "+5m to +15m (on a flight)",
    }
    ack = next(item for item in context["expected"] if item["id"] == "ack")
    assert (ack["deadline"], ack["deadline_at"]) == ("+5m", "18:35:00")
    assert (ack["observed"], ack["observed_at"], ack["outcome"]) == ("+4m30s", "18:34:30", "met")
    mitigate = next(item for item in context["expected"] if item["id"] == "mitigate")
    assert (mitigate["outcome"], mitigate["late_by"], mitigate["points"]) == ("late", "5m", 1)
    assert mitigate["person"] == "Ana Silva"
    assert [s["id"] for s in context["strengths"]] == ["page", "ack", "status-note"]
    assert [s["id"] for s in context["improvements"]] == ["commander", "mitigate"]
    commander = context["improvements"][0]
    assert commander["contingency_fired"]
    assert commander["contingency"] == ["chat from Dana (support): is anyone on orders?"]
    assert [row["offset"] for row in context["timeline"]][:4] == ["+0s", "+12s", "+15s", "+4m30s"]
    assert context["timeline"][-1]["kind"] == "control"
    assert context["playbooks"] == {"pages": 1, "channels": 1, "escalations": 1, "refused": 1}
    assert context["corrective_actions"][0]["owner"] == "Ben Okafor"
    assert context["endex"] == {"at": "19:30:00", "offset": "+1h", "by": "schedule"}


def test_the_markdown_report_has_every_section() -> None:
    text = render_drill_report(run_of(), ITEMS, MD)
    lines = [row for row in text.splitlines() if row.strip()]
    assert lines[0] == f"**{BANNER}**"
    assert lines[-1] == f"**{BANNER}**"
    headings = [row for row in lines if row.startswith("## ")]
    assert headings == [
        "## Summary",
        "## Objectives",
        "## Expected actions",
        "## Drill timeline",
        "## What the playbooks did",
        "## Strengths",
        "## Areas for improvement",
        "## Corrective actions",
        "## Discussion questions",
    ]
    assert "# After-action report: Primary database lost at the evening peak" in text
    assert "| Run | db-failover-1 (simulated, ended) |" in text
    assert f"`{hashlib.sha256(SCENARIO.encode()).hexdigest()}`" in text
    assert "| Score | **5 / 9** (56%) |" in text
    assert "| Expected actions | 3 met, 1 late, 1 missed |" in text
    assert "| Incidents opened | #41 |" in text
    assert "| Facilitator | Fatima Haddad |" in text
    assert "| primary-oncall | Ana Silva | +5m to +15m (on a flight) |" in text
    # Objectives with their controls and ratings
    assert (
        "| Establish command and mitigate | SOC2:CC7.4, NIST:RS.CO-2 | commander, mitigate |"
        in text
    )
    assert "**not met**" in text
    assert "**not rated**" in text
    # Expected actions: deadline and observed as offsets and scenario clock times
    assert (
        "| ack: acknowledge | incident-commander (Ben Okafor) | +5m (18:35:00) "
        "| +4m30s (18:34:30) | met | 2 / 2 |"
    ) in text
    assert (
        "| mitigate: mitigate | primary-oncall (Ana Silva) | +20m (18:50:00) "
        "| +25m (18:55:00) | late by 5m | 1 / 3 |"
    ) in text
    assert (
        "| commander: commander | incident-commander (Ben Okafor) | +10m (18:40:00) "
        "| — | missed, contingency fired | 0 / 2 |"
    ) in text
    assert "| page: page | anyone | +1m (18:31:00) | +12s (18:30:12) | met | 1 / 1 |" in text
    # The drill timeline, in order; a pipe in untrusted text does not split the row
    assert "| +4m30s | 18:34:30 | response | Ben Okafor acknowledged #41 (ack) |" in text
    assert text.index("| +0s | 18:30:00 | inject |") < text.index("| +1h | 19:30:00 | control |")
    assert "\\| pipe" in text
    # What the playbooks did
    assert "- Pages sent: 1" in text
    assert "- Channels opened: 1" in text
    assert "- Escalations fired: 1" in text
    assert "- Actions refused by the drill's safety rules: 1" in text
    assert "| +10m20s | 18:40:20 | slack.post | #general is outside |" in text
    # Strengths, earliest first; areas for improvement with the contingency
    strengths = text.split("## Strengths")[1].split("## Areas")[0]
    assert strengths.index("page by anyone at +12s") < strengths.index(
        "acknowledge by incident-commander (Ben Okafor) at +4m30s (18:34:30), deadline +5m"
    )
    assert strengths.index("+4m30s") < strengths.index("note by comms-lead (Chen Wu) at +14m")
    improvements = text.split("## Areas for improvement")[1].split("## Corrective")[0]
    assert "commander by incident-commander (Ben Okafor), deadline +10m (18:40:00): missed" in (
        improvements
    )
    assert "contingency fired: chat from Dana (support): is anyone on orders?" in improvements
    assert "late, done at +25m (18:55:00), 5m after the deadline; 1 / 3 points" in improvements
    # Corrective actions, discussion questions
    assert (
        "| 12 | Drill db-failover-1: commander by incident-commander was missed (deadline +10m) "
        "| Ben Okafor | 2026-03-24 | open |"
    ) in text
    assert "1. What slowed the handover of command?" in text
    assert "2. Who else should have been paged?" in text


def test_the_html_report_escapes_untrusted_text() -> None:
    for html in (True, None):  # None: told apart by the template's text
        page = render_drill_report(run_of(), ITEMS, HTML, html=html)
        assert SCRIPT not in page
        assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in page
        assert page.count(f'<div class="banner">{BANNER}</div>') == 2
        for heading in (
            "Summary",
            "Objectives",
            "Expected actions",
            "Drill timeline",
            "What the playbooks did",
            "Strengths",
            "Areas for improvement",
            "Corrective actions",
            "Discussion questions",
        ):
            assert f"<h2>{heading}</h2>" in page
        assert "<strong>5 / 9</strong> (56%)" in page
        assert '<td class="late">late by 5m</td>' in page
        assert "<td>+4m30s (18:34:30)</td>" in page
        assert "<li>What slowed the handover of command?</li>" in page


def test_proposed_corrective_actions_for_late_and_missed() -> None:
    assert proposed_corrective_actions(run_of()) == [
        (
            "Drill db-failover-1: commander by incident-commander was missed (deadline +10m)",
            "Ben Okafor",
        ),
        ("Drill db-failover-1: mitigate by primary-oncall was late (deadline +20m)", "Ana Silva"),
    ]
    # Expected of anyone, or of a role nobody plays: the facilitator owns it.
    result = {
        **RESULT,
        "scores": [
            score("page", "page", None, 60, None, 0, 1),
            score("scribe", "note", "scribe", 300, 400, 0, 1),
        ],
    }
    assert proposed_corrective_actions(run_of(result)) == [
        ("Drill db-failover-1: page by anyone was missed (deadline +1m)", "Fatima Haddad"),
        ("Drill db-failover-1: note by scribe was late (deadline +5m)", "Fatima Haddad"),
    ]


def test_without_corrective_actions_the_report_proposes_them() -> None:
    text = render_drill_report(run_of({**RESULT, "corrective_actions": []}), [], MD)
    section = text.split("## Corrective actions")[1].split("## Discussion")[0]
    assert "None recorded yet. Proposed" in section
    assert (
        "| Drill db-failover-1: mitigate by primary-oncall was late (deadline +20m) | Ana Silva |"
    ) in section


def test_a_run_with_no_result_yet_renders() -> None:
    run = DrillRun(**{**run_of().__dict__, "state": RunState.RUNNING, "ended_at": None})
    run = DrillRun(**{**run.__dict__, "result": {}})
    for template, html in ((MD, False), (HTML, True)):
        text = render_drill_report(run, [], template, html=html)
        assert "EXERCISE" in text
    text = render_drill_report(run, [], MD)
    assert "| Ended | — |" in text
    assert "_nothing logged_" in text
    assert "| Score | **0 / 0** |" in text
    assert proposed_corrective_actions(run) == []
