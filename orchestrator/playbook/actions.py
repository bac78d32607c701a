"""The action vocabulary playbooks may use, with each action's parameters; handlers deliver them."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Which fields are templates, and whether they end up in Slack mrkdwn (escaped on render).
    templates: ClassVar[dict[str, bool]] = {}


class PagerDutyTrigger(Params):
    """Page through the Events API; `service` names a routing key in settings, never the key."""

    service: str = Field(min_length=1, description="PagerDuty service name from settings")
    urgency: Literal["high", "low"] = "high"
    summary: str | None = Field(None, description="template; defaults to the incident title")
    templates: ClassVar[dict[str, bool]] = {"summary": False}


class PagerDutyEscalate(Params):
    level: int = Field(ge=1, le=10, description="escalation policy level to page")


class PagerDutyAcknowledge(Params):
    pass


class PagerDutyResolve(Params):
    pass


class SlackOpenChannel(Params):
    name: str = Field(min_length=1, description="template for the channel name")
    topic: str | None = None
    invite: list[str] = Field(
        default_factory=list, description='"oncall", "@user", "@group" or a Slack id'
    )
    templates: ClassVar[dict[str, bool]] = {"name": False, "topic": True}


class SlackPost(Params):
    """Post to the incident channel, or to `channel`; give `text` or a named `template`."""

    channel: str | None = Field(None, description="e.g. #incidents; default: incident channel")
    text: str | None = None
    template: str | None = Field(None, description="name of a template in playbooks/templates/")
    thread: bool = Field(
        False,
        description="reply in the thread of this incident's first message in that channel "
        "(the pinned summary in the incident channel, the announcement in #incidents)",
    )
    templates: ClassVar[dict[str, bool]] = {"text": True}

    @model_validator(mode="after")
    def _one_body(self) -> SlackPost:
        if (self.text is None) == (self.template is None):
            raise ValueError("give exactly one of 'text' or 'template'")
        return self


ACTION_PARAMS: dict[str, type[Params]] = {
    "pagerduty.trigger": PagerDutyTrigger,
    "pagerduty.escalate": PagerDutyEscalate,
    "pagerduty.acknowledge": PagerDutyAcknowledge,
    "pagerduty.resolve": PagerDutyResolve,
    "slack.open_channel": SlackOpenChannel,
    "slack.post": SlackPost,
}
ACTION_NAMES = frozenset(ACTION_PARAMS)


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)

    @property
    def name(self) -> str:
        return next(iter(type(self).model_fields.values())).alias or ""

    @property
    def params(self) -> Params:
        value = getattr(self, next(iter(type(self).model_fields)))
        assert isinstance(value, Params)
        return value


class PagerDutyTriggerStep(_Step):
    step: PagerDutyTrigger = Field(alias="pagerduty.trigger")


class PagerDutyEscalateStep(_Step):
    step: PagerDutyEscalate = Field(alias="pagerduty.escalate")


class PagerDutyAcknowledgeStep(_Step):
    step: PagerDutyAcknowledge = Field(alias="pagerduty.acknowledge")


class PagerDutyResolveStep(_Step):
    step: PagerDutyResolve = Field(alias="pagerduty.resolve")


class SlackOpenChannelStep(_Step):
    step: SlackOpenChannel = Field(alias="slack.open_channel")


class SlackPostStep(_Step):
    step: SlackPost = Field(alias="slack.post")


def _step_name(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    if isinstance(value, _Step):
        return value.name
    return None


def _check_step_shape(value: Any) -> Any:
    """Turns shape mistakes into one clear sentence instead of a union's wall of errors."""
    if isinstance(value, _Step):
        return value
    if isinstance(value, str) and value in ACTION_NAMES:
        return {value: {}}  # `- pagerduty.resolve` is shorthand for `- pagerduty.resolve: {}`
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError("an action is a mapping with exactly one key, the action name")
    name = next(iter(value))
    if name not in ACTION_NAMES:
        known = ", ".join(sorted(ACTION_NAMES))
        raise ValueError(f"unknown action {name!r}; known actions: {known}")
    if value[name] is None:
        return {name: {}}
    return value


ActionStep = Annotated[
    Annotated[PagerDutyTriggerStep, Tag("pagerduty.trigger")]
    | Annotated[PagerDutyEscalateStep, Tag("pagerduty.escalate")]
    | Annotated[PagerDutyAcknowledgeStep, Tag("pagerduty.acknowledge")]
    | Annotated[PagerDutyResolveStep, Tag("pagerduty.resolve")]
    | Annotated[SlackOpenChannelStep, Tag("slack.open_channel")]
    | Annotated[SlackPostStep, Tag("slack.post")],
    Discriminator(_step_name),
    BeforeValidator(_check_step_shape),
]
