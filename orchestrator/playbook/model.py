"""The playbook format as pydantic models; its JSON Schema is what editors complete against."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from orchestrator.incident.model import Severity, Status
from orchestrator.playbook.actions import ActionStep, SlackPostStep
from orchestrator.playbook.durations import format_duration, parse_duration
from orchestrator.playbook.matchers import Matcher, parse_matchers


def _duration(value: Any) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        return value
    if value == 0 and not isinstance(value, bool):  # YAML reads a bare `0` as a number
        return dt.timedelta(0)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration string like 5m or 1h30m, got {type(value).__name__}")
    return parse_duration(value)


Duration = Annotated[
    dt.timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(\d+(ms|s|m|h|d|w|y))+$|^0$"}),
]


def _matcher_text(value: str) -> str:
    parse_matchers(value)  # raises MatcherError (a ValueError) with the column that went wrong
    return value


def _severity(value: Any) -> Any:
    if isinstance(value, str) and value not in Severity.__members__:
        raise ValueError(
            f"{value!r} is not a severity: use SEV1 … SEV5, or a mapping "
            "{from_label, map, default}"
        )
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


MatcherText = Annotated[str, AfterValidator(_matcher_text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SeverityRule(_Strict):
    """Severity read from an alert label, mapped to SEV1 to SEV5."""

    from_label: str = "severity"
    map: dict[str, Severity] = Field(default_factory=dict)
    default: Severity = Severity.SEV3

    def for_labels(self, labels: dict[str, str]) -> Severity:
        return self.map.get(labels.get(self.from_label, ""), self.default)


class EscalationLevel(_Strict):
    after: Duration = Field(description="time since the incident triggered (or the round began)")
    do: list[ActionStep] = Field(min_length=1)


class Escalation(_Strict):
    """Runs while nobody has acknowledged; `repeat` runs the whole ladder again N more times."""

    levels: list[EscalationLevel] = Field(min_length=1)
    repeat: int = Field(0, ge=0, le=10)

    @field_validator("levels")
    @classmethod
    def _increasing(cls, levels: list[EscalationLevel]) -> list[EscalationLevel]:
        for earlier, later in itertools.pairwise(levels):
            if later.after <= earlier.after:
                raise ValueError(
                    "levels must have strictly increasing 'after' "
                    f"({format_duration(earlier.after)} then {format_duration(later.after)})"
                )
        return levels


class BusinessHours(_Strict):
    """When escalation may page: a level due outside these hours waits for the next opening."""

    timezone: str = Field("UTC", description="IANA name, e.g. Europe/Berlin")
    days: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4], description="0 = Monday … 6 = Sunday"
    )
    start: dt.time = dt.time(9, 0)
    end: dt.time = dt.time(17, 0)

    @model_validator(mode="after")
    def _sane(self) -> BusinessHours:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from None
        if not self.days or any(day not in range(7) for day in self.days):
            raise ValueError("days: give weekdays from 0 (Monday) to 6 (Sunday)")
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self


_DEFAULT_REMINDER: tuple[ActionStep, ...] = (
    SlackPostStep.model_validate(
        {
            "slack.post": {
                "text": "No status update on #{{ incident.number }} for a while: "
                "post one with `/incident note <what is happening>`"
            }
        }
    ),
)


class Reminder(_Strict):
    """While the incident is open, nudge responders when nobody has posted a status update
    (a note, or any change of status, severity or commander) for `every`."""

    every: Duration
    do: list[ActionStep] = Field(default_factory=lambda: list(_DEFAULT_REMINDER))


class PostmortemPolicy(_Strict):
    required_when: str = Field(description='e.g. "max_severity <= SEV2 or data_loss"')


class TestAlert(_Strict):
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    status: Literal["firing", "resolved"] = "firing"
    after: Duration = Field(dt.timedelta(0), description="time since the previous alert")


class TestExpectation(_Strict):
    playbook: str | None = Field(description="the playbook that should match; null for none")
    incidents: int | None = Field(None, ge=0, description="incidents opened in total")
    severity: Severity | None = Field(None, description="of the incident the last alert went to")
    status: Status | None = Field(None, description="of the incident the last alert went to")
    actions: list[str] | None = Field(None, description="names of the actions run, in order")


class PlaybookTest(_Strict):
    name: str
    alerts: list[TestAlert] = Field(min_length=1)
    expect: TestExpectation


class Playbook(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    description: str = ""
    owner: str = ""
    match: Annotated[
        list[MatcherText],
        BeforeValidator(_one_or_many),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}, "minItems": 1},
                ],
                "description": "Alertmanager matchers, all must hold",
            }
        ),
    ] = Field(min_length=1, description="Alertmanager matchers, all must hold")
    continue_: bool = Field(False, alias="continue", description="keep matching later playbooks")
    severity: Annotated[Severity | SeverityRule, BeforeValidator(_severity)] = Severity.SEV3
    group_by: list[str] = Field(
        default_factory=lambda: ["alertname"],
        description="alerts with equal values join one open incident; ['...'] = all labels",
    )
    reopen_window: Duration | None = Field(None, description="a recurrence within it reopens")
    resolve: Literal["all_alerts_resolved", "manual"] = "all_alerts_resolved"
    title: str = "{{ labels.alertname }}"
    summary: str = "{{ annotations.summary }}"
    on_trigger: list[ActionStep] = Field(default_factory=list)
    on_acknowledge: list[ActionStep] = Field(default_factory=list)
    on_resolve: list[ActionStep] = Field(default_factory=list)
    on_reopen: list[ActionStep] | None = Field(None, description="default: on_trigger again")
    escalation: Escalation | None = None
    ack_timeout: Duration | None = Field(
        None, description="acknowledged but not mitigated this long: re-page, restart escalation"
    )
    on_ack_timeout: list[ActionStep] | None = Field(
        None, description="default: the pagerduty.trigger steps of on_trigger (a re-page)"
    )
    reminder: Reminder | None = Field(None, description="nudge when status updates stop")
    business_hours: BusinessHours | None = Field(
        None, description="escalate only within these hours (severity defaults: SEV3)"
    )
    postmortem: PostmortemPolicy | None = None
    runbook: str | None = Field(None, pattern=r"^https?://")
    tests: list[PlaybookTest] = Field(default_factory=list)

    # Filled in by the loader: where it came from, its content hash, and resolved templates.
    _matchers: list[Matcher] = PrivateAttr(default_factory=list)
    _source: str = PrivateAttr("")
    _version: str = PrivateAttr("")
    _templates: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _parse_matchers(self) -> Playbook:
        self._matchers = [m for text in self.match for m in parse_matchers(text)]
        if not self._matchers:
            raise ValueError(
                "match: give at least one matcher; a playbook matching every alert "
                'is almost always a mistake (use alertname=~".+" if meant)'
            )
        return self

    def ack_timeout_steps(self) -> list[ActionStep]:
        if self.on_ack_timeout is not None:
            return self.on_ack_timeout
        return [step for step in self.on_trigger if step.name == "pagerduty.trigger"]

    @property
    def matchers(self) -> list[Matcher]:
        return self._matchers

    @property
    def source(self) -> str:
        return self._source

    @property
    def version(self) -> str:
        return self._version

    @property
    def templates(self) -> dict[str, str]:
        return self._templates

    def severity_for(self, labels: dict[str, str]) -> Severity:
        if isinstance(self.severity, Severity):
            return self.severity
        return self.severity.for_labels(labels)

    def attach(self, source: str, version: str, templates: dict[str, str]) -> None:
        self._source, self._version, self._templates = source, version, templates


def playbook_json_schema() -> dict[str, Any]:
    schema = Playbook.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Incident orchestrator playbook"
    return schema
