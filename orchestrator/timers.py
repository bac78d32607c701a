"""Durable timers: escalation and ack-timeout deadlines, stored with the decision that set them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum


class TimerStatus(StrEnum):
    PENDING = "pending"
    FIRED = "fired"
    CANCELLED = "cancelled"


class TimerKind(StrEnum):
    ESCALATION = "escalation"
    ACK_TIMEOUT = "ack_timeout"
    REMINDER = "reminder"  # no status update for a while: nudge the responders


@dataclass(frozen=True)
class Timer:
    key: str  # deterministic, like action keys: scheduling the same timer twice is a no-op
    incident_number: int
    kind: str  # a TimerKind value
    due_at: dt.datetime
    payload: dict[str, int | str] = field(default_factory=dict)
    status: TimerStatus = TimerStatus.PENDING
    drill_id: str | None = None  # fired only by this drill's runner, never by the service
    trace: str | None = None  # W3C traceparent of its incident
