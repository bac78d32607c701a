"""The scenario's players: who is away when, and what a scripted response does, as the events
the engine takes from any responder."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.drill.scenario import Do, Scenario, ScriptedResponse
from orchestrator.incident.events import (
    CommanderAssigned,
    Event,
    NoteAdded,
    SeverityChanged,
    StatusChange,
)
from orchestrator.incident.model import Actor, ActorKind, Status

_STATUS_OF = {
    Do.ACKNOWLEDGE: Status.ACKNOWLEDGED,
    Do.MITIGATE: Status.MITIGATED,
    Do.RESOLVE: Status.RESOLVED,
}


@dataclass
class Absence:
    """A role that does not answer from `start` to `end` (seconds from the start; None: ever)."""

    role: str
    start: float
    end: float | None
    reason: str


@dataclass
class Cast:
    scenario: Scenario
    absences: list[Absence] = field(default_factory=list)

    @classmethod
    def of(cls, scenario: Scenario) -> Cast:
        away = [
            Absence(
                a.role,
                a.start.total_seconds(),
                a.until.total_seconds() if a.until is not None else None,
                a.reason,
            )
            for a in scenario.roles.unavailable
        ]
        return cls(scenario, away)

    def away(self, role: str, offset: float) -> Absence | None:
        for absence in self.absences:
            if absence.role != role or offset < absence.start:
                continue
            if absence.end is None or offset < absence.end:
                return absence
        return None

    def actor(self, role: str) -> Actor:
        """A scripted player acts under their role, with the person's name."""
        return Actor(ActorKind.DRILL, role, self.scenario.person(role))


def event_for(step: ScriptedResponse, actor: Actor) -> Event:
    """What the engine is told when a scripted player acts (escalate aside: the pipeline's
    `escalate` fires the next level at once)."""
    if step.do in _STATUS_OF:
        return StatusChange(_STATUS_OF[step.do], actor, step.text)
    if step.do is Do.NOTE:
        return NoteAdded(step.text, actor)
    if step.do is Do.SEVERITY:
        assert step.severity is not None  # the scenario's validation requires it
        return SeverityChanged(step.severity, actor, step.text)
    return CommanderAssigned(actor.name, actor)
