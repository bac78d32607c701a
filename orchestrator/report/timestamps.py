"""Canonical incident timestamps (SPEC §3), derived from an incident's timeline entries alone."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

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
    fold = TimestampFold(entries[0].incident_number)
    for entry in sorted(entries, key=lambda entry: entry.seq):
        fold.add(entry)
    return fold.result()


# The kinds a fold looks at; every other entry only moves its seq on. Reading just these (and the
# newest seq) is enough to bring a stored fold up to date.
FOLDED_KINDS = frozenset(
    {*STATUS_AFTER, Kind.ALERT_RECEIVED, Kind.SEVERITY_CHANGED, Kind.ACTION_SUCCEEDED, CORRECTION}
)


@dataclass
class TimestampFold:
    """canonical_timestamps as a fold over entries in seq order, whose state can be stored and
    taken up again when more entries arrive (store/folds.py keeps one per incident).

    Each moment is kept with the seq of the entry it came from: a correction names the entry
    it corrects, and moves the moment only if that entry is still the one it came from."""

    number: int
    seq: int = 0  # the newest entry folded in
    first_recorded: str = ""  # dates a timeline whose triggered entry is missing
    triggered: tuple[int, str, str] | None = None  # seq, occurred_at, recorded_at
    trigger_impact: str | None = None  # impact_started_at as the triggered entry gave it
    playbook: str = ""
    is_drill: bool = False
    first_alert: tuple[int, str, str] | None = None  # seq, occurred_at, recorded_at
    first_alert_corrected: bool = False
    service: str = ""
    status: str = Status.TRIGGERED.value
    severity: str | None = None
    first_ack: tuple[int, str] | None = None  # seq, occurred_at
    first_page: tuple[int, str] | None = None
    mitigated: tuple[int, str] | None = None
    resolved: tuple[int, str] | None = None
    closed: tuple[int, str] | None = None
    reopens: int = 0

    def add(self, entry: TimelineEntry) -> None:
        """Folds in the next entry (entries must come in seq order, each once)."""
        self.step(entry.seq, entry.kind, entry.occurred_at, entry.recorded_at, entry.data)

    def step(
        self,
        seq: int,
        kind: Kind | str,
        occurred_at: dt.datetime,
        recorded_at: dt.datetime,
        data: dict[str, Any],
    ) -> None:
        """add() for an entry given as its parts, as the store reads them."""
        self.seq = seq
        if not self.first_recorded:
            self.first_recorded = recorded_at.isoformat()
        if kind not in FOLDED_KINDS:
            return
        kind = Kind(kind)
        self.status = STATUS_AFTER.get(kind, Status(self.status)).value
        when = (seq, occurred_at.isoformat())
        if kind is Kind.INCIDENT_TRIGGERED and self.triggered is None:
            self.triggered = (*when, recorded_at.isoformat())
            self.trigger_impact = _text(data.get("impact_started_at"))
            self.playbook = str(data.get("playbook", ""))
            self.is_drill = data.get("is_drill") is True
            self._raise_severity(data.get("severity"))
        elif kind is Kind.ALERT_RECEIVED and self.first_alert is None:
            self.first_alert = (*when, recorded_at.isoformat())
            labels = data.get("labels", {})
            self.service = str(labels.get("service", "")) if isinstance(labels, dict) else ""
        elif kind is Kind.INCIDENT_ACKNOWLEDGED and self.first_ack is None:
            self.first_ack = when
        elif kind is Kind.INCIDENT_MITIGATED:
            self.mitigated = when
        elif kind is Kind.INCIDENT_RESOLVED:
            self.resolved = when
        elif kind is Kind.INCIDENT_CLOSED:
            self.closed = when
        elif kind is Kind.INCIDENT_REOPENED:
            # Impact came back: what was mitigated or resolved before did not hold.
            self.reopens += 1
            self.mitigated = self.resolved = None
        elif kind is Kind.SEVERITY_CHANGED:
            for value in (data.get("from"), data.get("to")):
                self._raise_severity(value)
        elif (
            kind is Kind.ACTION_SUCCEEDED
            and data.get("action") == PAGE_ACTION
            and self.first_page is None
        ):
            self.first_page = when
        elif kind == CORRECTION:
            self._correct(data)

    def _raise_severity(self, value: object) -> None:
        raised = _severity(value)
        if raised is not None:
            current = _severity(self.severity)
            self.severity = (raised if current is None else current.worst(raised)).value

    def _correct(self, data: dict[str, Any]) -> None:
        changes = data.get("changes")
        target = data.get("corrects")
        when = instant(changes.get("occurred_at")) if isinstance(changes, dict) else None
        if not isinstance(target, int) or when is None:
            return
        fixed = when.isoformat()
        for name in ("first_ack", "first_page", "mitigated", "resolved", "closed"):
            moment = getattr(self, name)
            if moment is not None and moment[0] == target:
                setattr(self, name, (target, fixed))
        if self.triggered is not None and self.triggered[0] == target:
            self.triggered = (target, fixed, self.triggered[2])
        if self.first_alert is not None and self.first_alert[0] == target:
            self.first_alert = (target, fixed, self.first_alert[2])
            self.first_alert_corrected = True

    def result(self) -> CanonicalTimestamps:
        if not self.seq:
            raise ValueError("an incident's timeline has no entries")
        impact = instant(self.trigger_impact)
        first_alert_at = _at(self.first_alert[1]) if self.first_alert else None
        if first_alert_at is not None and (impact is None or self.first_alert_corrected):
            # A corrected start of the first alert is a person setting when impact began.
            impact = first_alert_at
        if self.first_alert is not None:
            detected: dt.datetime | None = _at(self.first_alert[2])
        else:
            detected = _at(self.triggered[2]) if self.triggered is not None else None
        status = Status(self.status)
        return CanonicalTimestamps(
            number=self.number,
            # A timeline without its triggered entry is damaged; its first entry still dates it.
            declared_at=_at(self.triggered[1] if self.triggered else self.first_recorded),
            impact_started_at=impact,
            first_alert_at=first_alert_at,
            detected_at=detected,
            first_page_at=_moment(self.first_page),
            first_ack_at=_moment(self.first_ack),
            mitigated_at=_moment(self.mitigated),
            resolved_at=(
                _moment(self.resolved) if status in (Status.RESOLVED, Status.CLOSED) else None
            ),
            closed_at=_moment(self.closed),
            status=status,
            max_severity=_severity(self.severity),
            playbook=self.playbook,
            service=self.service,
            reopens=self.reopens,
            is_drill=self.is_drill,
        )

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimestampFold:
        fold = cls(**data)
        for name in (
            "triggered",
            "first_alert",
            "first_ack",
            "first_page",
            "mitigated",
            "resolved",
            "closed",
        ):
            value = getattr(fold, name)
            if value is not None:
                setattr(fold, name, tuple(value))
        return fold


_STAMP_FIELDS = tuple(field.name for field in dataclasses.fields(CanonicalTimestamps))
_TIME_AT = tuple(i for i, name in enumerate(_STAMP_FIELDS) if name.endswith("_at"))
_STATUS_AT = _STAMP_FIELDS.index("status")
_SEVERITY_AT = _STAMP_FIELDS.index("max_severity")


def stamps_json(stamps: CanonicalTimestamps) -> list[Any]:
    """The timestamps as a compact JSON array, in field order, to store beside a fold:
    reading it back (stamps_from_json) costs a fraction of taking the fold up again."""
    values: list[Any] = []
    for name in _STAMP_FIELDS:
        value = getattr(stamps, name)
        if isinstance(value, dt.datetime):
            value = value.isoformat()
        elif isinstance(value, (Status, Severity)):
            value = value.value
        values.append(value)
    return values


def stamps_from_json(values: Sequence[Any]) -> CanonicalTimestamps:
    if len(values) != len(_STAMP_FIELDS):
        raise ValueError(f"stored timestamps have {len(values)} fields, not {len(_STAMP_FIELDS)}")
    fields = list(values)
    for at in _TIME_AT:
        if fields[at] is not None:
            fields[at] = dt.datetime.fromisoformat(fields[at])
    fields[_STATUS_AT] = Status(fields[_STATUS_AT])
    fields[_SEVERITY_AT] = _severity(fields[_SEVERITY_AT])
    return frozen(CanonicalTimestamps, dict(zip(_STAMP_FIELDS, fields, strict=True)))


F = TypeVar("F")


def frozen(cls: type[F], fields: dict[str, Any]) -> F:
    """An instance of the frozen dataclass `cls` with exactly these fields, built without its
    __init__: that sets each field through object.__setattr__, which was most of the cost of
    reading a year of incidents. For deserializers and builders that pass every field, already
    checked, as pickle does."""
    instance = object.__new__(cls)
    instance.__dict__.update(fields)
    return instance


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _moment(moment: tuple[int, str] | None) -> dt.datetime | None:
    return _at(moment[1]) if moment is not None else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


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
