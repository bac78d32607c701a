"""What a drill run leaves behind: the stored run, its log and its scores. Plain values, shared
by the runner that writes them, the after-action report and the evidence export that read them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Mode(StrEnum):
    SIMULATED = "simulated"
    LIVE = "live"


class RunState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    ENDED = "ended"


@dataclass(frozen=True)
class DrillRun:
    """One run of a scenario. `result` is the JSON the runner writes as it goes (see Result)."""

    id: str  # "<scenario id>-<n>", n counting that scenario's runs in this store
    scenario_id: str
    title: str
    scenario_sha256: str
    scenario: str  # the scenario file as written
    mode: Mode
    state: RunState
    started_at: dt.datetime  # wall clock
    clock_start: dt.datetime  # scenario time at offset 0
    ended_at: dt.datetime | None = None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LogLine:
    """One thing that happened in the run, for the report's drill timeline."""

    offset: float  # seconds from the scenario start
    at: str  # scenario time, ISO 8601
    kind: str  # inject | response | skipped | contingency | observed | refused | control
    text: str
    ref: str = ""  # the inject, response or expected action it is about

    def as_json(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "at": self.at,
            "kind": self.kind,
            "text": self.text,
            "ref": self.ref,
        }


@dataclass(frozen=True)
class Observation:
    """Something the runner saw on a drill incident's timeline."""

    action: str  # an Observed value
    offset: float
    at: str
    incident: int
    actor: str  # who did it, as the timeline says
    role: str | None  # the scenario role that person plays, if any
    level: int | None = None  # escalation level (1-based)
    severity: str | None = None
    service: str | None = None  # the PagerDuty service paged

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Score:
    """One expected action, judged."""

    id: str
    action: str
    by: str | None
    deadline: float  # seconds from the start
    observed: float | None  # seconds from the start, or None when it never happened
    met: bool
    points: int
    max_points: int
    contingency_fired: bool

    @property
    def outcome(self) -> str:
        if self.met:
            return "met"
        return "late" if self.observed is not None else "missed"

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "outcome": self.outcome}


class Rating(StrEnum):
    MET = "met"
    PARTIALLY_MET = "partially met"
    NOT_MET = "not met"
    NOT_RATED = "not rated"  # no expected action attached: discussed, not measured


class DrillStateError(ValueError):
    """A control that does not apply: no such run, or it has ended."""
