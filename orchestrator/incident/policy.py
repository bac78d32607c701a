"""The escalation policy an incident follows: a snapshot taken when it triggered (its playbook's
policy, or the severity defaults of SPEC §8), and the timers that policy sets. Pure."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.incident.model import Incident, Severity
from orchestrator.playbook.actions import (
    ActionStep,
    PagerDutyEscalateStep,
    PagerDutyTriggerStep,
    SlackPostStep,
)
from orchestrator.playbook.durations import format_duration
from orchestrator.playbook.model import BusinessHours, Duration, EscalationLevel, Playbook, Reminder
from orchestrator.timers import Timer, TimerKind


class EscalationPolicy(BaseModel):
    """Everything that makes an incident escalate, frozen when it triggered: editing the
    playbook later does not change a running escalation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(description='"playbook", or the severity default it came from')
    levels: list[EscalationLevel] = Field(default_factory=list)
    repeat: int = 0
    ack_timeout: Duration | None = None
    on_ack_timeout: list[ActionStep] = Field(default_factory=list)
    reminder: Reminder | None = None
    business_hours: BusinessHours | None = None

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True) | {
            "source": self.source
        }

    def describe(self) -> str:
        """One line for people, e.g. `5m pagerduty.escalate, 3 rounds; ack timeout 30m`."""
        parts = []
        if self.levels:
            ladder = " → ".join(
                f"{format_duration(level.after)} {', '.join(step.name for step in level.do)}"
                for level in self.levels
            )
            parts.append(ladder + (f", {self.repeat + 1} rounds" if self.repeat else ""))
        else:
            parts.append("no escalation")
        if self.ack_timeout is not None:
            parts.append(f"ack timeout {format_duration(self.ack_timeout)}")
        if self.reminder is not None:
            parts.append(f"reminder every {format_duration(self.reminder.every)}")
        if self.business_hours is not None:
            hours = self.business_hours
            parts.append(f"business hours {hours.start:%H:%M}-{hours.end:%H:%M} {hours.timezone}")
        return f"{'; '.join(parts)} ({self.source})"


@dataclass(frozen=True)
class SeverityDefault:
    escalate_after: dt.timedelta | None  # None: no paging at this severity
    ack_timeout: dt.timedelta | None = None
    business_hours: bool = False


MINUTE = dt.timedelta(minutes=1)
SPEC_DEFAULTS: Mapping[Severity, SeverityDefault] = {
    Severity.SEV1: SeverityDefault(5 * MINUTE, 30 * MINUTE),
    Severity.SEV2: SeverityDefault(15 * MINUTE, 60 * MINUTE),
    Severity.SEV3: SeverityDefault(30 * MINUTE, business_hours=True),
    Severity.SEV4: SeverityDefault(None),
    Severity.SEV5: SeverityDefault(None),
}


@dataclass(frozen=True)
class PolicyDefaults:
    """What a playbook that says nothing about escalation gets (SPEC §8, configurable)."""

    by_severity: Mapping[Severity, SeverityDefault] = field(default_factory=lambda: SPEC_DEFAULTS)
    business_hours: BusinessHours = field(default_factory=BusinessHours)
    # The PagerDuty service that pages the incident commander, for major incidents (SEV1, SEV2).
    commander_service: str | None = None


def snapshot(playbook: Playbook, severity: Severity, defaults: PolicyDefaults) -> EscalationPolicy:
    """The policy a new incident follows: the playbook's own if it has one, else the defaults
    for its severity, built from what the playbook does on trigger."""
    on_ack_timeout = list(playbook.ack_timeout_steps())
    if playbook.escalation is not None or playbook.ack_timeout is not None:
        escalation = playbook.escalation
        return EscalationPolicy(
            source="playbook",
            levels=list(escalation.levels) if escalation else [],
            repeat=escalation.repeat if escalation else 0,
            ack_timeout=playbook.ack_timeout,
            on_ack_timeout=on_ack_timeout,
            reminder=playbook.reminder,
            business_hours=playbook.business_hours,
        )
    default = defaults.by_severity.get(severity, SeverityDefault(None))
    steps = _default_steps(playbook, severity, defaults)
    levels = []
    if default.escalate_after is not None and steps:
        levels = [EscalationLevel(after=default.escalate_after, do=steps)]
    hours = playbook.business_hours or (defaults.business_hours if default.business_hours else None)
    return EscalationPolicy(
        source=f"{severity.value} default",
        levels=levels,
        ack_timeout=default.ack_timeout if default.escalate_after is not None else None,
        on_ack_timeout=on_ack_timeout,
        reminder=playbook.reminder,
        business_hours=hours,
    )


def _default_steps(
    playbook: Playbook, severity: Severity, defaults: PolicyDefaults
) -> list[ActionStep]:
    """Escalating means the next PagerDuty level when the playbook pages, a nudge in the
    incident channel when it only opens one; major incidents page the commander too."""
    names = {step.name for step in playbook.on_trigger}
    steps: list[ActionStep] = []
    if "pagerduty.trigger" in names:
        steps.append(PagerDutyEscalateStep.model_validate({"pagerduty.escalate": {"level": 2}}))
        if severity.is_major and defaults.commander_service:
            service = {"service": defaults.commander_service, "urgency": "high"}
            steps.append(PagerDutyTriggerStep.model_validate({"pagerduty.trigger": service}))
    if "slack.open_channel" in names:
        text = "{{ incident.severity }} #{{ incident.number }} is still unacknowledged"
        steps.append(SlackPostStep.model_validate({"slack.post": {"text": text}}))
    return steps


def policy_of(incident: Incident, playbook: Playbook) -> EscalationPolicy:
    """The snapshot the incident carries; incidents from before snapshots follow the playbook."""
    if incident.policy:
        # Incidents of one playbook and severity share a snapshot: parse each one once.
        return _parsed(orjson.dumps(incident.policy, option=orjson.OPT_SORT_KEYS))
    return snapshot(playbook, incident.severity, PolicyDefaults())


@functools.lru_cache(maxsize=256)
def _parsed(policy_json: bytes) -> EscalationPolicy:
    return EscalationPolicy.model_validate_json(policy_json)


def ladder_id(round_start: dt.datetime) -> str:
    """Names one run of the escalation ladder by when it started, so a ladder restarted after an
    ack timeout gets new timer and action keys instead of colliding with the first run's."""
    return round_start.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")


def within_hours(moment: dt.datetime, hours: BusinessHours | None) -> dt.datetime:
    """`moment`, or the next opening of the business hours if it falls outside them."""
    if hours is None:
        return moment
    zone = ZoneInfo(hours.timezone)
    local = moment.astimezone(zone)
    for _ in range(8):  # at most a week ahead
        opens = dt.datetime.combine(local.date(), hours.start, zone)
        closes = dt.datetime.combine(local.date(), hours.end, zone)
        if local.weekday() in hours.days and local < closes:
            return max(local, opens).astimezone(dt.UTC)
        local = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), zone)
    return moment  # unreachable with at least one day configured; never lose the timer


def escalation_timer(
    incident: Incident,
    policy: EscalationPolicy,
    round_: int,
    level: int,
    round_start: dt.datetime,
) -> list[Timer]:
    if level >= len(policy.levels):
        return []
    due = within_hours(round_start + policy.levels[level].after, policy.business_hours)
    return [
        Timer(
            key=f"{incident.number}:{incident.cycle}:esc:{ladder_id(round_start)}.{round_}.{level}",
            incident_number=incident.number,
            kind=TimerKind.ESCALATION.value,
            due_at=due,
            payload={
                "cycle": incident.cycle,
                "round": round_,
                "level": level,
                "round_start": round_start.isoformat(),
            },
        )
    ]


def ack_timeout_timer(
    incident: Incident, policy: EscalationPolicy, now: dt.datetime
) -> list[Timer]:
    if policy.ack_timeout is None:
        return []
    return [
        Timer(
            key=f"{incident.number}:{incident.cycle}:ack_timeout:{ladder_id(now)}",
            incident_number=incident.number,
            kind=TimerKind.ACK_TIMEOUT.value,
            due_at=now + policy.ack_timeout,
            payload={"cycle": incident.cycle},
        )
    ]


def reminder_timer(incident: Incident, policy: EscalationPolicy, now: dt.datetime) -> list[Timer]:
    """The next nudge, `every` after now; keyed by the incident's revision so that a reset
    within the same second still schedules a new timer."""
    if policy.reminder is None or not incident.status.is_open:
        return []
    return [
        Timer(
            key=f"{incident.number}:{incident.cycle}:reminder:{incident.revision}",
            incident_number=incident.number,
            kind=TimerKind.REMINDER.value,
            due_at=now + policy.reminder.every,
            payload={"cycle": incident.cycle},
        )
    ]
