"""What a run leaves: its stored result, built from the scenario, the run's log, what was
observed and how it scored, and the wording of the run's log lines."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from orchestrator.drill.players import Absence
from orchestrator.drill.record import LogLine, Observation, Score
from orchestrator.drill.scenario import Observed, Scenario
from orchestrator.drill.scoring import rating


@dataclass
class RunFacts:
    start: dt.datetime
    shift: dt.timedelta
    live: bool
    ended: dt.datetime
    endex_by: str
    absences: list[Absence] = field(default_factory=list)


def run_result(
    scenario: Scenario,
    run: RunFacts,
    log: list[LogLine],
    observations: list[Observation],
    scores: list[Score],
    incidents: list[int],
) -> dict[str, Any]:
    """The stored result of a run (drill_runs.result): what the report and export read."""
    by_id = {s.id: s for s in scores}
    refusals = [
        {
            "offset": line.offset,
            "action": line.ref,
            "reason": line.text.removeprefix(f"{line.ref} refused: "),
        }
        for line in log
        if line.kind == "refused"
    ]

    def count(action: Observed) -> int:
        return sum(o.action == action.value for o in observations)

    return {
        "scenario": {
            "id": scenario.id,
            "title": scenario.title,
            "classification": scenario.classification,
            "description": scenario.description,
        },
        "participants": {
            "facilitator": scenario.roles.facilitator,
            "players": dict(scenario.roles.players),
            "unavailable": [
                {
                    "role": a.role,
                    "person": scenario.roles.players.get(a.role, ""),
                    "from": a.start,
                    "until": a.end,
                    "reason": a.reason,
                }
                for a in run.absences
            ],
        },
        "clock": {
            "start": run.start.isoformat(),
            "speed": scenario.clock.speed if run.live else None,
            "duration": scenario.duration.total_seconds(),
        },
        "incidents": incidents,
        "log": [line.as_json() for line in log],
        "observations": [o.as_json() for o in observations],
        "scores": [s.as_json() for s in scores],
        "objectives": [
            {
                "id": o.id,
                "text": o.text,
                "controls": list(o.controls),
                "expected": list(o.expected),
                "rating": rating(o, by_id).value,
            }
            for o in scenario.objectives
        ],
        "score": {
            "points": sum(s.points for s in scores),
            "max": sum(s.max_points for s in scores),
        },
        "playbooks": {
            "pages": count(Observed.PAGE),
            "channels": count(Observed.CHANNEL),
            "escalations": count(Observed.ESCALATION),
            "refused": len(refusals),
        },
        "refusals": refusals,
        "questions": list(scenario.questions),
        "corrective_actions": [],
        "endex": {
            "at": run.ended.isoformat(),
            "offset": (run.ended - run.start - run.shift).total_seconds(),
            "by": run.endex_by,
        },
    }


# -- the log ----------------------------------------------------------------------------


SYSTEM_ACTIONS = {Observed.PAGE.value, Observed.CHANNEL.value, Observed.ESCALATION.value}


def describe(seen: Observation) -> str:
    if seen.action == Observed.ESCALATION.value:
        return f"escalation level {seen.level} fired on"
    if seen.action == Observed.PAGE.value:
        return "page sent for" + (f" ({seen.service})" if seen.service else "")
    if seen.action == Observed.CHANNEL.value:
        return "Slack channel opened for"
    if seen.action == Observed.SEVERITY.value:
        return f"severity {seen.severity} on"
    return {
        "acknowledge": "acknowledged",
        "mitigate": "mitigated",
        "resolve": "resolved",
        "commander": "commander assigned on",
        "note": "status note on",
    }.get(seen.action, seen.action)


def span(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"
