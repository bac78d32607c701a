"""Which incidents need a postmortem (`postmortem.required_when`) and which ones are late."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.incident.model import Incident, Status
from orchestrator.playbook.conditions import Condition, Facts
from orchestrator.report.postmortem import Postmortem, PostmortemStatus
from orchestrator.report.timestamps import canonical_timestamps
from orchestrator.timeline import Kind, TimelineEntry

__all__ = [
    "Overdue",
    "business_days_between",
    "incident_flags",
    "overdue_postmortem",
    "postmortem_required",
]

_FALSE = frozenset({"", "0", "false", "no", "off", "none"})
_TAG = re.compile(r"(?<![\w#])#([a-z][a-z0-9_]*)", re.IGNORECASE)


def incident_flags(incident: Incident, entries: Sequence[TimelineEntry]) -> frozenset[str]:
    """Flags a `required_when` condition can name: a label set on the incident or any of its
    alerts (`data_loss=true`; "false", "no", "0" do not set it), or a `#tag` in a note."""
    flags = {name for name, value in incident.group_labels.items() if value.lower() not in _FALSE}
    for entry in entries:
        labels = entry.data.get("labels") if entry.kind is Kind.ALERT_RECEIVED else None
        if isinstance(labels, dict):
            flags.update(k for k, v in labels.items() if str(v).lower() not in _FALSE)
        elif entry.kind is Kind.NOTE:
            flags.update(tag.lower() for tag in _TAG.findall(str(entry.data.get("text", ""))))
    return frozenset(flags)


def postmortem_required(
    condition: Condition, incident: Incident, entries: Sequence[TimelineEntry]
) -> bool:
    facts = Facts(incident.max_severity, incident.severity, incident_flags(incident, entries))
    return condition.holds(facts)


def business_days_between(start: dt.date, end: dt.date) -> int:
    """Weekdays after `start` up to and including `end`: resolved on a Friday, the following
    Monday is one business day later. Holidays are not known here."""
    if end <= start:
        return 0
    days = (end - start).days
    weeks, rest = divmod(days, 7)
    count = weeks * 5
    for offset in range(1, rest + 1):
        if (start + dt.timedelta(days=offset)).weekday() < 5:
            count += 1
    return count


@dataclass(frozen=True)
class Overdue:
    incident: Incident
    resolved_at: dt.datetime
    business_days: int  # since it was resolved
    postmortem: PostmortemStatus | None  # None: nothing stored yet
    required_when: str


def overdue_postmortem(
    incident: Incident,
    entries: Sequence[TimelineEntry],
    condition: Condition,
    postmortem: Postmortem | None,
    *,
    as_of: dt.datetime,
    days: int,
) -> Overdue | None:
    """The incident, if its playbook requires a postmortem, it was resolved more than `days`
    business days before `as_of`, and no approved postmortem exists. Drills are left out:
    they have after-action reports of their own."""
    if incident.is_drill or incident.status not in (Status.RESOLVED, Status.CLOSED):
        return None
    if postmortem is not None and postmortem.status is PostmortemStatus.APPROVED:
        return None
    resolved = canonical_timestamps(entries).resolved_at if entries else None
    resolved = resolved or incident.resolved_at
    if resolved is None or not postmortem_required(condition, incident, entries):
        return None
    elapsed = business_days_between(
        resolved.astimezone(dt.UTC).date(), as_of.astimezone(dt.UTC).date()
    )
    if elapsed <= days:
        return None
    status = postmortem.status if postmortem is not None else None
    return Overdue(incident, resolved, elapsed, status, condition.text)
