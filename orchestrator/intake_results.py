"""What the pipeline takes in and reports back: payloads as they arrived, and what became of each
alert in them. Plain values, importable without the pipeline and its engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.ingest.alert import Alert, SourceFormat
from orchestrator.store.protocols import AlertRecord, Disposition


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


def alert_record(
    alert: Alert,
    disposition: Disposition,
    playbook: str | None = None,
    incident_number: int | None = None,
) -> AlertRecord:
    return AlertRecord(
        alert_id=alert.id,
        source=alert.source.value,
        fingerprint=alert.fingerprint,
        status=alert.status.value,
        labels=dict(alert.labels),
        starts_at=alert.starts_at,
        received_at=alert.received_at,
        disposition=disposition,
        playbook=playbook,
        incident_number=incident_number,
    )
