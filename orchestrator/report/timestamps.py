"""Canonical incident timestamps (SPEC §3), derived from an incident's timeline entries alone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.incident.model import Severity, Status
from orchestrator.timeline import Kind, TimelineEntry

# The action whose first successful delivery is the first page.
PAGE_ACTION = "pagerduty.trigger"
# Entries are never edited: an entry of this kind says an earlier one (data "corrects": its
# seq) should have said {"changes": {"occurred_at": ...}}, and the corrected time is the one used.
CORRECTION = "correction"

# The status each lifecycle entry leaves the incident in; replaying them gives the incident's
# status without trusting the mutable incident row.
STATUS_AFTER: dict[Kind, Status] = {
    Kind.INCIDENT_TRIGGERED: Status.TRIGGERED,
    Kind.INCIDENT_ACKNOWLEDGED: Status.ACKNOWLEDGED,
    Kind.INCIDENT_MITIGATED: Status.MITIGATED,
    Kind.INCIDENT_RESOLVED: Status.RESOLVED,
    Kind.INCIDENT_CLOSED: Status.CLOSED,
    Kind.INCIDENT_DECLINED: Status.DECLINED,
    Kind.INCIDENT_MERGED: Status.MERGED,
    Kind.INCIDENT_CANCELED: Status.CANCELED,
    Kind.INCIDENT_REOPENED: Status.TRIGGERED,
    Kind.INCIDENT_ACK_TIMED_OUT: Status.TRIGGERED,
}


@dataclass(frozen=True)
class CanonicalTimestamps:
    """What one incident's timeline says happened, and when (UTC-aware datetimes).

    `None` means the timeline holds no such moment (never acknowledged, still open, ...).
    """

    number: int
    declared_at: dt.datetime  # the incident.triggered entry: when the incident was opened
    impact_started_at: dt.datetime | None  # the first alert's starts_at (the source's clock)
    first_alert_at: dt.datetime | None  # the first alert.received entry's starts_at
    detected_at: dt.datetime | None  # when we received the first alert (our clock)
    first_page_at: dt.datetime | None  # the first pagerduty.trigger delivered
    first_ack_at: dt.datetime | None  # the first explicit acknowledgement, even if reopened since
    mitigated_at: dt.datetime | None  # the mitigation that held: none after the last reopen
    resolved_at: dt.datetime | None  # the final resolution: none if reopened since
    closed_at: dt.datetime | None
    status: Status  # as the last lifecycle entry left it
    max_severity: Severity | None  # the highest severity the incident reached
    playbook: str
    service: str  # the first alert's `service` label, as the engine sets it
    reopens: int
    is_drill: bool  # only when an entry says so; the incident's own flag is passed separately


def canonical_timestamps(entries: Sequence[TimelineEntry]) -> CanonicalTimestamps:
    """Reads the canonical timestamps off one incident's timeline (any order; sorted by seq).

    Lifecycle moments use the entry's `occurred_at` (when the person or system acted, by its
    own clock), as corrected by any later correction entry; detection uses `recorded_at`
    (when we received the first alert, by ours).
    """
    if not entries:
        raise ValueError("an incident's timeline has no entries")
    ordered = sorted(entries, key=lambda entry: entry.seq)
    triggered = next((e for e in ordered if e.kind is Kind.INCIDENT_TRIGGERED), None)
    first_alert = next((e for e in ordered if e.kind is Kind.ALERT_RECEIVED), None)
    trigger_data: dict[str, Any] = triggered.data if triggered is not None else {}
    corrected = _corrected_times(ordered)

    def occurred(entry: TimelineEntry) -> dt.datetime:
        return corrected.get(entry.seq, entry.occurred_at)

    status = Status.TRIGGERED
    first_ack: dt.datetime | None = None
    first_page: dt.datetime | None = None
    mitigated: dt.datetime | None = None
    resolved: dt.datetime | None = None
    closed: dt.datetime | None = None
    reopens = 0
    severity = _severity(trigger_data.get("severity"))
    for entry in ordered:
        status = STATUS_AFTER.get(entry.kind, status)
        if entry.kind is Kind.INCIDENT_ACKNOWLEDGED and first_ack is None:
            first_ack = occurred(entry)
        elif entry.kind is Kind.INCIDENT_MITIGATED:
            mitigated = occurred(entry)
        elif entry.kind is Kind.INCIDENT_RESOLVED:
            resolved = occurred(entry)
        elif entry.kind is Kind.INCIDENT_CLOSED:
            closed = occurred(entry)
        elif entry.kind is Kind.INCIDENT_REOPENED:
            # Impact came back: what was mitigated or resolved before did not hold.
            reopens += 1
            mitigated = resolved = None
        elif entry.kind is Kind.SEVERITY_CHANGED:
            for value in (entry.data.get("from"), entry.data.get("to")):
                raised = _severity(value)
                if raised is not None:
                    severity = raised if severity is None else severity.worst(raised)
        elif (
            entry.kind is Kind.ACTION_SUCCEEDED
            and entry.data.get("action") == PAGE_ACTION
            and first_page is None
        ):
            first_page = occurred(entry)

    impact = instant(trigger_data.get("impact_started_at"))
    if first_alert is not None and (impact is None or first_alert.seq in corrected):
        # A corrected start of the first alert is a person setting when impact began.
        impact = occurred(first_alert)
    if first_alert is not None:
        detected: dt.datetime | None = first_alert.recorded_at
    else:
        detected = triggered.recorded_at if triggered is not None else None
    labels = first_alert.data.get("labels", {}) if first_alert is not None else {}
    return CanonicalTimestamps(
        number=ordered[0].incident_number,
        # A timeline without its triggered entry is damaged; its first entry still dates it.
        declared_at=occurred(triggered) if triggered is not None else ordered[0].recorded_at,
        impact_started_at=impact,
        first_alert_at=occurred(first_alert) if first_alert is not None else None,
        detected_at=detected,
        first_page_at=first_page,
        first_ack_at=first_ack,
        mitigated_at=mitigated,
        resolved_at=resolved if status in (Status.RESOLVED, Status.CLOSED) else None,
        closed_at=closed,
        status=status,
        max_severity=severity,
        playbook=str(trigger_data.get("playbook", "")),
        service=str(labels.get("service", "")) if isinstance(labels, dict) else "",
        reopens=reopens,
        is_drill=trigger_data.get("is_drill") is True,
    )


def _corrected_times(ordered: Sequence[TimelineEntry]) -> dict[int, dt.datetime]:
    """seq → the occurred_at its latest correction gives it."""
    fixed: dict[int, dt.datetime] = {}
    for entry in ordered:
        if entry.kind != CORRECTION:
            continue
        changes = entry.data.get("changes")
        target = entry.data.get("corrects")
        when = instant(changes.get("occurred_at")) if isinstance(changes, dict) else None
        if isinstance(target, int) and when is not None:
            fixed[target] = when
    return fixed


def _severity(value: object) -> Severity | None:
    try:
        return Severity(str(value)) if value is not None else None
    except ValueError:
        return None


def instant(value: object) -> dt.datetime | None:
    """An ISO 8601 time from entry data; a naive one is taken as UTC, as the engine writes UTC."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)
