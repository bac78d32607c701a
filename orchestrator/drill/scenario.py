"""The drill scenario format (SPEC §7) as pydantic models; its JSON Schema is published in
docs/schemas/ so editors can complete scenario files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.incident.model import Severity
from orchestrator.playbook.model import Duration

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
# A control reference: framework, colon, identifier (SOC2:CC7.4, NIST:RS.CO-2, ISO27001:A.5.24).
CONTROL_PATTERN = r"^(SOC2|NIST|ISO27001|ISO):[A-Za-z0-9][A-Za-z0-9.\-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Objective(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    text: str = Field(min_length=1)
    controls: list[Annotated[str, Field(pattern=CONTROL_PATTERN)]] = Field(
        min_length=1, description="controls it gives evidence for, e.g. SOC2:CC7.4"
    )
    expected: list[str] = Field(
        default_factory=list, description="ids of the expected actions that show it was met"
    )


class Unavailable(_Strict):
    """A player who does not respond for a while (asleep, on a flight, phone on silent)."""

    role: str
    start: Duration = Field(dt.timedelta(0), alias="from", description="offset it begins at")
    until: Duration | None = Field(None, description="offset it ends at; absent: all drill")
    reason: str = ""


class Roles(_Strict):
    facilitator: str = Field(min_length=1, description="who runs the exercise")
    players: dict[str, str] = Field(
        min_length=1, description="role → person, e.g. primary-oncall: Ana Silva"
    )
    unavailable: list[Unavailable] = Field(default_factory=list)


class ClockSettings(_Strict):
    start: dt.datetime = Field(description="scenario time at offset 0, with a UTC offset")
    speed: float = Field(1.0, gt=0, le=3600, description="scenario seconds per wall second, live")

    @field_validator("start")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-03-02T18:30:00Z")
        return value.astimezone(dt.UTC)


class Safety(_Strict):
    """What a live drill may touch; everything else is refused and logged."""

    slack_channels: list[str] = Field(
        default_factory=list,
        description="channel names or globs (#drill-*) a live drill may post to",
    )
    pagerduty_services: list[str] = Field(
        default_factory=list, description="PagerDuty services (as configured) a live drill may page"
    )


class InlineAlert(_Strict):
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    status: Literal["firing", "resolved"] = "firing"


class RecordedAlerts(_Strict):
    """A file of real alert messages (one JSON document after another), replayed with their
    spacing kept and every timestamp moved onto the scenario clock."""

    file: str = Field(description="path relative to the scenario file")
    format: Literal["native", "alertmanager", "grafana", "cloudevents"] | None = None


class Chat(_Strict):
    sender: str = Field(alias="from", min_length=1)
    text: str = Field(min_length=1)


class Absence(_Strict):
    role: str
    duration: Duration | None = Field(None, alias="for", description="absent: for the rest")
    reason: str = ""


class SeverityNote(_Strict):
    to: Severity
    reason: str = ""


class CustomerReport(_Strict):
    text: str = Field(min_length=1)
    customers: int | None = Field(None, ge=0, description="how many customers report it")


class InjectKind(StrEnum):
    ALERT = "alert"
    ALERTS_FILE = "alerts_file"
    CHAT = "chat"
    UNAVAILABLE = "unavailable"
    SEVERITY = "severity"
    CUSTOMER_REPORT = "customer_report"


class Inject(_Strict):
    """One thing that happens to the players at an offset: exactly one of the kinds."""

    id: str | None = Field(None, pattern=ID_PATTERN)
    at: Duration = Field(dt.timedelta(0), description="offset from the start (or the deadline)")
    alert: InlineAlert | None = None
    alerts_file: RecordedAlerts | None = None
    chat: Chat | None = None
    unavailable: Absence | None = None
    severity: SeverityNote | None = None
    customer_report: CustomerReport | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Inject:
        given = [kind for kind in InjectKind if getattr(self, kind.value) is not None]
        if len(given) != 1:
            kinds = ", ".join(kind.value for kind in InjectKind)
            raise ValueError(f"an inject has exactly one of {kinds}; found {len(given)}")
        return self

    @property
    def kind(self) -> InjectKind:
        return next(kind for kind in InjectKind if getattr(self, kind.value) is not None)

    def label(self, index: int) -> str:
        return self.id or f"{self.kind.value}@{index + 1}"


class Observed(StrEnum):
    """What the runner can see happen, on the drill incidents' timelines."""

    PAGE = "page"  # a PagerDuty page was delivered
    CHANNEL = "channel"  # the incident's Slack channel was opened
    ESCALATION = "escalation"  # an escalation level fired
    ACKNOWLEDGE = "acknowledge"
    MITIGATE = "mitigate"
    RESOLVE = "resolve"
    SEVERITY = "severity"
    COMMANDER = "commander"
    NOTE = "note"  # a status update was posted


class ExpectedAction(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    action: Observed
    by: str | None = Field(None, description="the role that must do it; absent: anyone")
    level: int | None = Field(None, ge=1, description="escalation: the playbook level (1-based)")
    severity: Severity | None = Field(None, description="severity: the level it must reach")
    deadline: Duration = Field(description="offset from the start it must happen by")
    points: int = Field(1, ge=0)
    late_points: int = Field(0, ge=0, description="points when done, but after the deadline")
    contingency: list[Inject] = Field(
        default_factory=list, description="injects when it is missed; `at` counts from the deadline"
    )


class Do(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    MITIGATE = "mitigate"
    RESOLVE = "resolve"
    NOTE = "note"
    SEVERITY = "severity"
    COMMANDER = "commander"
    ESCALATE = "escalate"


class Trigger(_Strict):
    """React to something the runner observes instead of at a fixed offset."""

    observed: Observed | None = Field(None, description="when this is first seen")
    level: int | None = Field(None, ge=1, description="escalation: at least this level")
    inject: str | None = Field(None, description="or: when the inject with this id arrives")

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        if (self.observed is None) == (self.inject is None):
            raise ValueError("a trigger has exactly one of `observed` and `inject`")
        return self


class ScriptedResponse(_Strict):
    """What a scripted player does, for unattended runs: at an offset, or `after` a trigger."""

    role: str
    do: Do
    at: Duration | None = Field(None, description="offset from the start")
    on: Trigger | None = Field(None, description="or: when this is first observed")
    delay: Duration = Field(dt.timedelta(0), description="after the trigger")
    text: str = ""
    severity: Severity | None = None
    incident: int = Field(1, ge=1, description="the drill's n-th incident")

    @property
    def label(self) -> str:
        return f"{self.role}:{self.do.value}"

    @model_validator(mode="after")
    def _when(self) -> ScriptedResponse:
        if (self.at is None) == (self.on is None):
            raise ValueError("a scripted response has exactly one of `at` and `on`")
        if self.do is Do.NOTE and not self.text:
            raise ValueError("`do: note` needs `text`")
        if self.do is Do.SEVERITY and self.severity is None:
            raise ValueError("`do: severity` needs `severity`")
        return self


class Scenario(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1)
    classification: str = Field(
        "EXERCISE", description='banner on everything the drill sends; must contain "EXERCISE"'
    )
    description: str = ""
    objectives: list[Objective] = Field(min_length=1)
    roles: Roles
    clock: ClockSettings
    duration: Duration = Field(description="ENDEX at this offset")
    safety: Safety = Field(default_factory=Safety)
    injects: list[Inject] = Field(min_length=1)
    expected: list[ExpectedAction] = Field(default_factory=list)
    script: list[ScriptedResponse] = Field(default_factory=list)
    questions: list[str] = Field(default_factory=list, description="for the debrief")

    @field_validator("classification")
    @classmethod
    def _banner(cls, value: str) -> str:
        if "EXERCISE" not in value:
            raise ValueError(
                'must contain "EXERCISE", so nobody mistakes a drill for the real thing'
            )
        return value

    def offset(self, when: dt.datetime) -> dt.timedelta:
        return when - self.clock.start

    def person(self, role: str) -> str:
        return self.roles.players[role]


def cross_problems(scenario: Scenario) -> list[tuple[tuple[int | str, ...], str]]:
    """What the schema cannot see: references between sections and timing that cannot work."""
    problems: list[tuple[tuple[int | str, ...], str]] = []
    roles = scenario.roles.players
    expected_ids = [item.id for item in scenario.expected]
    inject_ids = [inject.id for inject in scenario.injects if inject.id]

    def role_known(loc: tuple[int | str, ...], role: str | None) -> None:
        if role is not None and role not in roles:
            problems.append((loc, f"unknown role {role!r}; roles: {', '.join(sorted(roles))}"))

    for name, ids in (("expected", expected_ids), ("injects", inject_ids)):
        for index, item_id in enumerate(ids):
            if item_id in ids[:index]:
                problems.append(((name, index, "id"), f"duplicate id {item_id!r}"))
    for index, objective in enumerate(scenario.objectives):
        for j, ref in enumerate(objective.expected):
            if ref not in expected_ids:
                problems.append(
                    (("objectives", index, "expected", j), f"no expected action {ref!r}")
                )
    for index, absence in enumerate(scenario.roles.unavailable):
        role_known(("roles", "unavailable", index, "role"), absence.role)
        if absence.until is not None and absence.until <= absence.start:
            problems.append((("roles", "unavailable", index, "until"), "must be after `from`"))
    for index, inject in enumerate(scenario.injects):
        problems += _inject_problems(("injects", index), inject, scenario, role_known)
    for index, item in enumerate(scenario.expected):
        loc: tuple[int | str, ...] = ("expected", index)
        role_known((*loc, "by"), item.by)
        if item.deadline > scenario.duration:
            problems.append(((*loc, "deadline"), "is after the drill's duration"))
        if item.level is not None and item.action is not Observed.ESCALATION:
            problems.append(((*loc, "level"), "only for `action: escalation`"))
        if item.severity is not None and item.action is not Observed.SEVERITY:
            problems.append(((*loc, "severity"), "only for `action: severity`"))
        for j, inject in enumerate(item.contingency):
            problems += _inject_problems(
                (*loc, "contingency", j), inject, scenario, role_known, after=item.deadline
            )
    for index, step in enumerate(scenario.script):
        loc = ("script", index)
        role_known((*loc, "role"), step.role)
        if step.at is not None and step.at > scenario.duration:
            problems.append(((*loc, "at"), "is after the drill's duration"))
        trigger = step.on
        if (
            trigger is not None
            and trigger.inject is not None
            and trigger.inject not in inject_ids
            and not _contingency_id(scenario, trigger.inject)
        ):
            problems.append(((*loc, "on", "inject"), f"no inject {trigger.inject!r}"))
    return problems


def _contingency_id(scenario: Scenario, inject_id: str) -> bool:
    return any(i.id == inject_id for item in scenario.expected for i in item.contingency)


def _inject_problems(
    loc: tuple[int | str, ...],
    inject: Inject,
    scenario: Scenario,
    role_known: Callable[[tuple[int | str, ...], str | None], None],
    *,
    after: dt.timedelta | None = None,
) -> list[tuple[tuple[int | str, ...], str]]:
    """`after`: the deadline a contingency's `at` counts from; None for a top-level inject."""
    problems: list[tuple[tuple[int | str, ...], str]] = []
    if (after or dt.timedelta(0)) + inject.at > scenario.duration:
        counted = "" if after is None else " (counted from the deadline)"
        problems.append(((*loc, "at"), f"is after the drill's duration{counted}"))
    if inject.unavailable is not None:
        role_known((*loc, "unavailable", "role"), inject.unavailable.role)
    return problems


def scenario_json_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Incident orchestrator drill scenario"
    return schema
