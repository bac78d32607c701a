"""Incident state, severities, actors and the lifecycle's transition table (SPEC §3)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    CLOSED = "closed"
    DECLINED = "declined"
    MERGED = "merged"
    CANCELED = "canceled"

    @property
    def is_open(self) -> bool:
        """Still being worked on: alerts join it and timers run for it."""
        return self in OPEN_STATUSES

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


OPEN_STATUSES = frozenset({Status.TRIGGERED, Status.ACKNOWLEDGED, Status.MITIGATED})
FINAL_STATUSES = frozenset({Status.CLOSED, Status.DECLINED, Status.MERGED, Status.CANCELED})

# Which status each lifecycle verb may leave from. Anything else is rejected with a clear error.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.ACKNOWLEDGED: frozenset({Status.TRIGGERED}),
    Status.MITIGATED: frozenset({Status.TRIGGERED, Status.ACKNOWLEDGED}),
    Status.RESOLVED: frozenset({Status.TRIGGERED, Status.ACKNOWLEDGED, Status.MITIGATED}),
    Status.CLOSED: frozenset({Status.RESOLVED}),
    Status.DECLINED: frozenset({Status.TRIGGERED, Status.ACKNOWLEDGED}),
    Status.MERGED: frozenset({Status.TRIGGERED, Status.ACKNOWLEDGED, Status.MITIGATED}),
    Status.CANCELED: frozenset({Status.TRIGGERED, Status.ACKNOWLEDGED, Status.MITIGATED}),
    Status.TRIGGERED: frozenset({Status.RESOLVED}),  # reopen
}


class Severity(StrEnum):
    """SEV1 is the worst. Comparisons follow urgency: SEV1 > SEV2."""

    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"
    SEV5 = "SEV5"

    @property
    def rank(self) -> int:
        """1 for SEV1; smaller is more severe."""
        return int(self.value[3:])

    def worst(self, other: Severity) -> Severity:
        return self if self.rank <= other.rank else other

    @property
    def is_major(self) -> bool:
        return self.rank <= 2


class ActorKind(StrEnum):
    SYSTEM = "system"
    PLAYBOOK = "playbook"
    ALERT = "alert"
    CLI = "cli"
    SLACK = "slack"
    PAGERDUTY = "pagerduty"
    DRILL = "drill"  # a drill's injects, facilitator and scripted players


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.name or self.id}"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "id": self.id, "name": self.name}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Actor:
        return cls(ActorKind(data["kind"]), data["id"], data.get("name", ""))


SYSTEM = Actor(ActorKind.SYSTEM, "orchestrator")


@dataclass(frozen=True)
class Incident:
    """The current state of one incident. The timeline, not this row, is the source of truth."""

    number: int
    title: str
    status: Status
    severity: Severity
    max_severity: Severity
    playbook: str
    playbook_version: str
    group_key: str
    group_labels: dict[str, str]
    declared_at: dt.datetime
    updated_at: dt.datetime
    service: str = ""
    team: str = ""
    summary: str = ""
    is_drill: bool = False
    firing: frozenset[str] = frozenset()
    cycle: int = 0  # how many times it was reopened; part of action keys so replays stay idempotent
    acknowledged_at: dt.datetime | None = None
    mitigated_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    revision: int = 0
    links: dict[str, str] = field(default_factory=dict)
    commander: str = ""  # who runs the response: a Slack user id or a name
    # The escalation policy taken when it triggered (incident.policy.EscalationPolicy as JSON).
    policy: dict[str, Any] | None = None
    drill_id: str | None = None  # the drill run it belongs to (is_drill is then True)
    trace: str | None = None  # W3C traceparent of the alert that opened it
