"""Everything that can happen to an incident, as values fed to the engine's decide()."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from orchestrator.incident.model import Actor, Severity, Status
from orchestrator.ingest.alert import Alert


@dataclass(frozen=True)
class AlertReceived:
    alert: Alert


@dataclass(frozen=True)
class StatusChange:
    """A person or system moves the incident: acknowledge, mitigate, resolve, close, reopen, ..."""

    to: Status
    actor: Actor
    reason: str = ""
    occurred_at: dt.datetime | None = None  # the source's time, when it differs from ours


@dataclass(frozen=True)
class NoteAdded:
    text: str
    actor: Actor
    occurred_at: dt.datetime | None = None


@dataclass(frozen=True)
class SeverityChanged:
    severity: Severity
    actor: Actor
    reason: str = ""
    occurred_at: dt.datetime | None = None


@dataclass(frozen=True)
class CommanderAssigned:
    """Someone takes (or hands over) command of the response."""

    commander: str
    actor: Actor
    occurred_at: dt.datetime | None = None


@dataclass(frozen=True)
class Correction:
    """An earlier entry was wrong: entries are never edited, so a new one says what it should
    have said (e.g. {"occurred_at": "..."} for an ack recorded late) and why."""

    seq: int
    reason: str
    changes: dict[str, str]
    actor: Actor


@dataclass(frozen=True)
class TimerFired:
    key: str
    kind: str
    due_at: dt.datetime
    payload: dict[str, int | str]


Event = (
    AlertReceived
    | StatusChange
    | NoteAdded
    | SeverityChanged
    | CommanderAssigned
    | Correction
    | TimerFired
)
