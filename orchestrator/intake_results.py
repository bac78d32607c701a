"""What the pipeline takes in and reports back: payloads as they arrived, and what became of each
alert in them. Plain values, importable without the pipeline and its engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.ingest.alert import SourceFormat
from orchestrator.store.protocols import Disposition


class IncidentNotFoundError(LookupError):
    pass


@dataclass(frozen=True)
class Payload:
    """Raw bytes as they arrived, and where from: "kafka:alerts/3@1042", "file.jsonl:12"."""

    raw: bytes
    origin: str
    format: SourceFormat | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    alert_id: str
    disposition: Disposition
    playbook: str | None = None
    incident_number: int | None = None
    actions: int = 0
    severity: str | None = None  # of the incident it opened


@dataclass(frozen=True)
class IngestReport:
    """What became of one payload: its alerts' outcomes, or the error that dead-lettered it."""

    origin: str
    format: SourceFormat | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None
    dead_letter_id: int | None = None
    truncated: int = 0
