"""Scoring a drill: what the timeline shows happened, judged against the scenario's expected
actions and objectives. Pure: the runner hands it timeline entries and offsets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.drill.record import Observation, Rating, Score
from orchestrator.drill.scenario import ExpectedAction, Objective, Observed, Scenario
from orchestrator.incident.model import ActorKind
from orchestrator.timeline import Kind, TimelineEntry

_STATUS = {
    Kind.INCIDENT_ACKNOWLEDGED: Observed.ACKNOWLEDGE,
    Kind.INCIDENT_MITIGATED: Observed.MITIGATE,
    Kind.INCIDENT_RESOLVED: Observed.RESOLVE,
}
_DELIVERED = {"pagerduty.trigger": Observed.PAGE, "slack.open_channel": Observed.CHANNEL}
INJECT_ACTOR = "inject"  # the actor id of what injects write
CONTROL_ACTOR = "control"  # the actor id of the runner's own entries (ENDEX)
NOT_PLAYERS = frozenset({INJECT_ACTOR, CONTROL_ACTOR})


def observe(
    entries: Iterable[TimelineEntry], incident: int, scenario: Scenario, start: dt.datetime
) -> list[Observation]:
    """What a drill incident's timeline entries show, in their order."""
    found = []
    for entry in entries:
        if entry.actor.kind is ActorKind.DRILL and entry.actor.id in NOT_PLAYERS:
            continue  # injects and the runner's own entries are nobody's doing
        seen = _observed(entry)
        if seen is None:
            continue
        action, extra = seen
        actor = entry.actor.name or entry.actor.id
        found.append(
            Observation(
                action=action.value,
                offset=(entry.occurred_at - start).total_seconds(),
                at=entry.occurred_at.isoformat(),
                incident=incident,
                actor=actor,
                role=role_of(scenario, entry.actor.id, entry.actor.name),
                **extra,
            )
        )
    return found


def _observed(entry: TimelineEntry) -> tuple[Observed, dict[str, Any]] | None:
    kind, data = entry.kind, entry.data
    if kind in _STATUS:
        return _STATUS[Kind(kind)], {}
    if kind == Kind.ACTION_SUCCEEDED and data.get("action") in _DELIVERED:
        service = data.get("service")
        return _DELIVERED[str(data["action"])], {"service": str(service) if service else None}
    if kind == Kind.TIMER_FIRED and data.get("timer") == "escalation":
        return Observed.ESCALATION, {"level": int(str(data.get("level", 0))) + 1}
    if kind == Kind.SEVERITY_CHANGED:
        return Observed.SEVERITY, {"severity": str(data.get("to"))}
    if kind == Kind.COMMANDER_ASSIGNED:
        return Observed.COMMANDER, {}
    if kind == Kind.NOTE:
        return Observed.NOTE, {}
    return None


def role_of(scenario: Scenario, actor_id: str, actor_name: str) -> str | None:
    """The role a timeline actor plays: by role id, or by the person's name or Slack id."""
    for role, person in scenario.roles.players.items():
        if actor_id == role or person in (actor_id, actor_name):
            return role
    return None


def first_match(item: ExpectedAction, observations: Iterable[Observation]) -> Observation | None:
    for seen in observations:
        if seen.action != item.action.value:
            continue
        if item.by is not None and seen.role != item.by:
            continue
        if item.level is not None and (seen.level or 0) < item.level:
            continue
        if item.severity is not None and (
            seen.severity is None or seen.severity > item.severity.value
        ):
            continue
        return seen
    return None


def score(
    item: ExpectedAction, observations: Iterable[Observation], contingency_fired: bool
) -> Score:
    seen = first_match(item, observations)
    deadline = item.deadline.total_seconds()
    met = seen is not None and seen.offset <= deadline
    points = item.points if met else (item.late_points if seen is not None else 0)
    return Score(
        id=item.id,
        action=item.action.value,
        by=item.by,
        deadline=deadline,
        observed=seen.offset if seen is not None else None,
        met=met,
        points=points,
        max_points=item.points,
        contingency_fired=contingency_fired,
    )


def rating(objective: Objective, scores: Mapping[str, Score]) -> Rating:
    judged = [scores[ref] for ref in objective.expected if ref in scores]
    if not judged:
        return Rating.NOT_RATED
    met = sum(score.met for score in judged)
    if met == len(judged):
        return Rating.MET
    return Rating.PARTIALLY_MET if met else Rating.NOT_MET
