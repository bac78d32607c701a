"""The after-action report of a drill run: what the scenario expected, what the players did and
when, what the playbooks did, and what follows from it. Pure: the caller reads the run, its
corrective actions and the template (playbooks/templates/drill-report.md.j2 or .html.j2)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.drill.record import DrillRun, Rating
from orchestrator.playbook.render import render_document
from orchestrator.report.action_items import ActionItem

__all__ = [
    "drill_report_context",
    "format_offset",
    "proposed_corrective_actions",
    "render_drill_report",
]

_UNITS = (("h", 3600), ("m", 60), ("s", 1))
_OUTCOMES = ("met", "late", "missed")


def format_offset(seconds: float) -> str:
    """An offset from the scenario start, coarse to fine, zero units at the end left out:
    0 reads "+0s", 270 "+4m30s", 600 "+10m", 3725 "+1h2m5s"."""
    total = round(seconds)
    sign, total = ("-", -total) if total < 0 else ("+", total)
    counts = []
    for unit, size in _UNITS:
        count, total = divmod(total, size)
        counts.append((count, unit))
    while counts and counts[0][0] == 0:
        counts.pop(0)
    while counts and counts[-1][0] == 0:
        counts.pop()
    return sign + ("".join(f"{count}{unit}" for count, unit in counts) or "0s")


def proposed_corrective_actions(run: DrillRun) -> list[tuple[str, str]]:
    """(title, owner) for each expected action done late or missed: the owner is the person
    playing the role it expected, or the facilitator when it expected anyone (or the role has
    nobody)."""
    participants = _mapping(run.result.get("participants"))
    players = _mapping(participants.get("players"))
    facilitator = str(participants.get("facilitator") or "")
    proposed = []
    for score in _scores(run.result):
        if score["outcome"] == "met":
            continue
        role = score["by"]
        owner = str(players.get(role) or facilitator) if role else facilitator
        title = (
            f"Drill {run.id}: {score['action']} by {role or 'anyone'} was {score['outcome']} "
            f"(deadline {format_offset(score['deadline'])})"
        )
        proposed.append((title, owner))
    return proposed


def render_drill_report(
    run: DrillRun,
    action_items: Sequence[ActionItem],
    template: str,
    *,
    html: bool | None = None,
) -> str:
    """The report from `template` (Markdown, or HTML with every value escaped). `html` None
    tells them apart by the text: an HTML template says `<html`, so HTML is never rendered
    unescaped by mistake."""
    as_html = "<html" in template.lower() if html is None else html
    return render_document(template, drill_report_context(run, action_items), html=as_html)


def drill_report_context(run: DrillRun, action_items: Sequence[ActionItem]) -> dict[str, Any]:
    """Everything a drill report template renders. Every part of `run.result` may be missing
    (a run still going, or one that stopped early): it then reads as empty."""
    result = run.result
    start = run.clock_start
    scenario = _mapping(result.get("scenario"))
    participants = _mapping(result.get("participants"))
    clock = _mapping(result.get("clock"))
    endex = _mapping(result.get("endex"))
    banner = str(scenario.get("classification") or "EXERCISE")
    scores = [_expected(score, start, result) for score in _scores(result)]
    total = _mapping(result.get("score"))
    points = _int(total.get("points"), sum(s["points"] for s in scores))
    most = _int(total.get("max"), sum(s["max_points"] for s in scores))
    playbooks = _mapping(result.get("playbooks"))
    items = {item.id: item for item in action_items}
    listed = [int(i) for i in _list(result.get("corrective_actions")) if isinstance(i, int)]
    corrective = [items[i] for i in listed if i in items] + [
        item for item in action_items if item.id not in listed
    ]
    counts = {outcome: sum(s["outcome"] == outcome for s in scores) for outcome in _OUTCOMES}
    return {
        "title": f"After-action report: {run.title}",
        "banner": banner,
        "run": {
            "id": run.id,
            "scenario_id": run.scenario_id,
            "title": run.title,
            "state": run.state.value,
            "incidents": [int(n) for n in _list(result.get("incidents")) if isinstance(n, int)],
        },
        "mode": run.mode.value,
        "scenario": {
            "id": str(scenario.get("id") or run.scenario_id),
            "title": str(scenario.get("title") or run.title),
            "description": str(scenario.get("description") or "").strip(),
            "sha256": run.scenario_sha256,
        },
        "scenario_sha256": run.scenario_sha256,
        "started_at": _utc(run.started_at),
        "ended_at": _utc(run.ended_at),
        "clock": {
            "start": _utc(start),
            "speed": _number(clock.get("speed")),  # None: simulated, not paced
            "duration": _offset_text(clock.get("duration")),
        },
        "endex": {
            "at": _clock_text(start, _float(endex.get("offset")), None),
            "offset": _offset_text(endex.get("offset")),
            "by": str(endex.get("by") or ""),
        },
        "facilitator": str(participants.get("facilitator") or ""),
        "players": _players(participants),
        "objectives": _objectives(result),
        "expected": scores,
        "outcomes": counts,
        "timeline": _timeline(result, start),
        "playbooks": {
            name: _int(playbooks.get(name), 0)
            for name in ("pages", "channels", "escalations", "refused")
        },
        "refusals": [
            {
                "offset": _offset_text(refusal.get("offset")),
                "at": _clock_text(start, _float(refusal.get("offset")), None),
                "action": str(refusal.get("action") or ""),
                "reason": str(refusal.get("reason") or ""),
            }
            for refusal in map(_mapping, _list(result.get("refusals")))
        ],
        "strengths": sorted(
            (s for s in scores if s["outcome"] == "met"),
            key=lambda s: (s["observed_seconds"] or 0.0, s["deadline_seconds"]),
        ),
        "improvements": sorted(
            (s for s in scores if s["outcome"] != "met"),
            key=lambda s: (s["deadline_seconds"], s["outcome"] == "missed"),
        ),
        "corrective_actions": [item.template_view() for item in corrective],
        "proposed": [
            {"title": title, "owner": owner} for title, owner in proposed_corrective_actions(run)
        ],
        "questions": [str(q) for q in _list(result.get("questions"))],
        "score": {
            "points": points,
            "max": most,
            "percent": round(100 * points / most) if most else None,
        },
    }


# --- the parts ---------------------------------------------------------------------------------


def _scores(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stored scores, read defensively: outcome from met and observed when absent."""
    out = []
    for raw in map(_mapping, _list(result.get("scores"))):
        observed = raw.get("observed")
        observed_at = float(observed) if isinstance(observed, int | float) else None
        met = bool(raw.get("met"))
        outcome = str(raw.get("outcome") or "")
        if outcome not in _OUTCOMES:
            outcome = "met" if met else ("late" if observed_at is not None else "missed")
        out.append(
            {
                "id": str(raw.get("id") or ""),
                "action": str(raw.get("action") or ""),
                "by": str(raw["by"]) if raw.get("by") else None,
                "deadline": _float(raw.get("deadline")) or 0.0,
                "observed": observed_at,
                "outcome": outcome,
                "points": _int(raw.get("points"), 0),
                "max_points": _int(raw.get("max_points"), 0),
                "contingency_fired": bool(raw.get("contingency_fired")),
            }
        )
    return out


def _expected(
    score: dict[str, Any], start: dt.datetime, result: Mapping[str, Any]
) -> dict[str, Any]:
    players = _mapping(_mapping(result.get("participants")).get("players"))
    deadline: float = score["deadline"]
    observed: float | None = score["observed"]
    contingency = [
        str(line.get("text") or "")
        for line in map(_mapping, _list(result.get("log")))
        if line.get("kind") == "contingency" and line.get("ref") == score["id"]
    ]
    late_by = observed - deadline if observed is not None and observed > deadline else None
    return {
        "id": score["id"],
        "action": score["action"],
        "by": score["by"] or "anyone",
        "person": str(players.get(score["by"]) or "") if score["by"] else "",
        "deadline": format_offset(deadline),
        "deadline_at": _clock_text(start, deadline, None),
        "deadline_seconds": deadline,
        "done": observed is not None,
        "observed": format_offset(observed) if observed is not None else "—",
        "observed_at": _clock_text(start, observed, None) if observed is not None else "—",
        "observed_seconds": observed,
        "late_by": format_offset(late_by).removeprefix("+") if late_by is not None else "",
        "outcome": score["outcome"],
        "points": score["points"],
        "max_points": score["max_points"],
        "contingency_fired": score["contingency_fired"],
        "contingency": contingency,
    }


def _players(participants: Mapping[str, Any]) -> list[dict[str, Any]]:
    away: dict[str, list[str]] = {}
    for absence in map(_mapping, _list(participants.get("unavailable"))):
        until = absence.get("until")
        span = f"{_offset_text(absence.get('from'))} to " + (
            _offset_text(until) if until is not None else "ENDEX"
        )
        reason = str(absence.get("reason") or "")
        away.setdefault(str(absence.get("role") or ""), []).append(
            f"{span} ({reason})" if reason else span
        )
    return [
        {
            "role": str(role),
            "person": str(person),
            "unavailable": "; ".join(away.get(str(role), [])),
        }
        for role, person in _mapping(participants.get("players")).items()
    ]


def _objectives(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for objective in map(_mapping, _list(result.get("objectives"))):
        rating = str(objective.get("rating") or Rating.NOT_RATED.value)
        controls = [str(c) for c in _list(objective.get("controls"))]
        expected = [str(e) for e in _list(objective.get("expected"))]
        out.append(
            {
                "id": str(objective.get("id") or ""),
                "text": str(objective.get("text") or ""),
                "controls": controls,
                "controls_text": ", ".join(controls),
                "expected": expected,
                "expected_text": ", ".join(expected),
                "rating": rating,
            }
        )
    return out


def _timeline(result: Mapping[str, Any], start: dt.datetime) -> list[dict[str, Any]]:
    """The log in the order things happened (the order written, for the same offset)."""
    lines = [_mapping(line) for line in _list(result.get("log"))]
    ordered = sorted(lines, key=lambda line: _float(line.get("offset")) or 0.0)
    return [
        {
            "offset": _offset_text(line.get("offset")),
            "at": _clock_text(start, _float(line.get("offset")), line.get("at")),
            "kind": str(line.get("kind") or ""),
            "text": str(line.get("text") or ""),
            "ref": str(line.get("ref") or ""),
        }
        for line in ordered
    ]


# --- values ------------------------------------------------------------------------------------


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: object, default: int) -> int:
    number = _float(value)
    return int(number) if number is not None else default


def _number(value: object) -> float | int | None:
    number = _float(value)
    if number is None:
        return None
    return int(number) if number.is_integer() else number


def _offset_text(value: object) -> str:
    seconds = _float(value)
    return format_offset(seconds) if seconds is not None else "—"


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _utc(value: dt.datetime | None) -> str:
    return _aware(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "—"


def _clock_text(start: dt.datetime, offset: float | None, at: object) -> str:
    """The scenario clock time: `at` as the runner wrote it, else the start plus the offset;
    the time of day alone on the scenario's first day, with the date on any later one."""
    when: dt.datetime | None = None
    if isinstance(at, str) and at:
        try:
            when = _aware(dt.datetime.fromisoformat(at))
        except ValueError:
            when = None
    if when is None:
        if offset is None:
            return "—"
        when = _aware(start) + dt.timedelta(seconds=offset)
    if when.date() == _aware(start).date():
        return when.strftime("%H:%M:%S")
    return when.strftime("%Y-%m-%d %H:%M:%S")
