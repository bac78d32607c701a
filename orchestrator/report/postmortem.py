"""The postmortem draft (SPEC §6): what the timeline knows, laid out for people to finish."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.incident.model import ActorKind, Incident
from orchestrator.incident.policy import EscalationPolicy
from orchestrator.playbook.model import Playbook
from orchestrator.playbook.render import human_duration
from orchestrator.report.action_items import ActionItem
from orchestrator.report.blameless import blame_phrases
from orchestrator.report.postmortem_record import Postmortem, PostmortemStatus
from orchestrator.report.timestamps import CanonicalTimestamps, canonical_timestamps, instant
from orchestrator.timeline import Kind, TimelineEntry

__all__ = [
    "Delivery",
    "Postmortem",
    "PostmortemStatus",
    "blame_phrases",
    "people_of",
    "postmortem_context",
]


@dataclass(frozen=True)
class Delivery:
    """A page or message the playbook sent (an outbox row, as the report needs it)."""

    name: str
    params: Mapping[str, Any]
    status: str  # delivered, failed or pending
    attempts: int
    delivered_at: dt.datetime | None = None
    last_error: str = ""


PEOPLE = frozenset({ActorKind.CLI, ActorKind.SLACK, ActorKind.PAGERDUTY})
# What a postmortem's timeline leaves out: bookkeeping (scheduling, retries, timers set and
# cancelled) and the follow-up itself.
_NOT_IN_TIMELINE = frozenset(
    {
        Kind.ACTION_SCHEDULED,
        Kind.ACTION_RETRYING,
        Kind.TIMER_SCHEDULED,
        Kind.TIMER_CANCELLED,
        Kind.TIMER_SKIPPED,
        Kind.CORRECTION,
        Kind.POSTMORTEM_UPDATED,
        Kind.POSTMORTEM_APPROVED,
        Kind.ACTION_ITEM_ADDED,
        Kind.ACTION_ITEM_UPDATED,
        Kind.ACTION_ITEM_CLOSED,
    }
)
_FOLLOW_UP = frozenset(k for k in Kind if k.value.startswith(("postmortem.", "action_item.")))
_TIMESTAMPS = (
    ("impact started", "impact_started_at"),
    ("first alert", "first_alert_at"),
    ("detected", "detected_at"),
    ("declared", "declared_at"),
    ("first page", "first_page_at"),
    ("first acknowledgement", "first_ack_at"),
    ("mitigated", "mitigated_at"),
    ("resolved", "resolved_at"),
    ("closed", "closed_at"),
)
# SPEC §4: (name, abbreviation, start, end). A missing timestamp gives no figure, never 0.
_DURATIONS = (
    ("time to detect", "TTD", "impact_started_at", "detected_at"),
    ("time to acknowledge", "TTA", "declared_at", "first_ack_at"),
    ("time to mitigate", "TTM", "impact_started_at", "mitigated_at"),
    ("time to resolve", "TTR", "declared_at", "resolved_at"),
    ("time to restore", "user impact", "impact_started_at", "resolved_at"),
)
_DID = {
    Kind.INCIDENT_ACKNOWLEDGED: "acknowledged",
    Kind.INCIDENT_MITIGATED: "mitigated",
    Kind.INCIDENT_RESOLVED: "resolved",
    Kind.INCIDENT_CLOSED: "closed",
    Kind.INCIDENT_REOPENED: "reopened",
    Kind.INCIDENT_DECLINED: "declined",
    Kind.INCIDENT_TRIGGERED: "declared",
    Kind.SEVERITY_CHANGED: "changed severity",
    Kind.COMMANDER_ASSIGNED: "assigned command",
    Kind.ESCALATED: "escalated",
    Kind.NOTE: "notes",
    Kind.CORRECTION: "corrections",
}


def utc(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def people_of(incident: Incident, entries: Sequence[TimelineEntry]) -> list[str]:
    """Everyone who acted on the incident, for the blameless check to recognise by name."""
    names = {e.actor.name or e.actor.id for e in entries if e.actor.kind in PEOPLE}
    names.update(str(e.data.get("to", "")) for e in entries if e.kind is Kind.COMMANDER_ASSIGNED)
    names.add(incident.commander)
    return sorted(name for name in names if name)


def postmortem_context(
    incident: Incident,
    entries: Sequence[TimelineEntry],
    deliveries: Sequence[Delivery],
    *,
    generated_at: dt.datetime,
    playbook: Playbook | None = None,
    record: Postmortem | None = None,
    action_items: Sequence[ActionItem] = (),
) -> dict[str, Any]:
    """Everything a postmortem template renders; `written` (the sections people wrote) starts
    empty and is filled from a stored postmortem by report.postmortem_doc."""
    ordered = sorted(entries, key=lambda entry: entry.seq)
    incident_entries = [e for e in ordered if e.kind not in _FOLLOW_UP]
    stamps = canonical_timestamps(incident_entries) if incident_entries else None
    status = record.status if record is not None else PostmortemStatus.DRAFT
    return {
        "generated_at": utc(generated_at),
        "incident": _incident(incident),
        "postmortem": {
            "status": status.value,
            "status_label": status.label,
            "owner": incident.commander or incident.team or (playbook.owner if playbook else ""),
            "updated_at": utc(record.updated_at) if record else "",
            "updated_by": record.updated_by if record else "",
            "approved_by": record.approved_by if record else "",
            "approved_at": utc(record.approved_at) if record and record.approved_at else "",
        },
        "timestamps": [
            {"name": name, "field": field, "at": utc(getattr(stamps, field) if stamps else None)}
            for name, field in _TIMESTAMPS
        ],
        "durations": _durations(stamps),
        "timeline": _timeline(incident_entries, stamps),
        "responders": _responders(incident, incident_entries),
        "communications": [_delivery(d) for d in deliveries],
        "playbook": _playbook(incident, playbook),
        "action_items": [item.template_view() for item in action_items],
        "written": {},
        "extra_sections": [],
    }


def _incident(incident: Incident) -> dict[str, Any]:
    return {
        "number": incident.number,
        "title": incident.title,
        "status": incident.status.value,
        "severity": incident.severity.value,
        "max_severity": incident.max_severity.value,
        "service": incident.service,
        "team": incident.team,
        "summary": incident.summary,
        "is_drill": incident.is_drill,
        "commander": incident.commander,
        "declared_at": utc(incident.declared_at),
        "links": [{"name": name, "url": url} for name, url in sorted(incident.links.items())],
    }


def _durations(stamps: CanonicalTimestamps | None) -> list[dict[str, Any]]:
    out = []
    for name, short, start, end in _DURATIONS:
        begin = getattr(stamps, start) if stamps else None
        finish = getattr(stamps, end) if stamps else None
        seconds = (finish - begin).total_seconds() if begin and finish else None
        out.append(
            {
                "name": name,
                "short": short,
                "formula": f"{end} - {start}",
                "seconds": seconds,
                "text": human_duration(seconds) if seconds is not None else "—",
            }
        )
    return out


def _timeline(
    entries: Sequence[TimelineEntry], stamps: CanonicalTimestamps | None
) -> list[dict[str, Any]]:
    """From the start of impact to the final resolution, in the order things happened."""
    corrected: dict[int, dict[str, Any]] = {}
    for entry in entries:
        changes = entry.data.get("changes")
        if entry.kind is Kind.CORRECTION and isinstance(changes, dict):
            corrected.setdefault(int(entry.data.get("corrects", 0)), {}).update(changes)
    start = stamps.impact_started_at if stamps else None
    end = stamps.resolved_at if stamps else None
    rows = []
    for entry in entries:
        if entry.kind in _NOT_IN_TIMELINE:
            continue
        fix = corrected.get(entry.seq, {})
        at = instant(fix.get("occurred_at")) or entry.occurred_at
        if end is not None and at > end:
            continue
        text = _describe(entry, fix)
        rows.append(
            {
                "at": utc(at),
                "since_impact": _since(start, at),
                "kind": entry.kind.value,
                "actor": entry.actor.name or entry.actor.id,
                "text": text + (" (corrected)" if fix else ""),
                "_sort": (at, entry.seq),
            }
        )
    rows.sort(key=lambda row: row.pop("_sort"))
    return rows


def _since(start: dt.datetime | None, at: dt.datetime) -> str:
    if start is None:
        return ""
    seconds = (at - start).total_seconds()
    return ("-" if seconds < 0 else "+") + human_duration(abs(seconds), seconds=False)


def _describe(entry: TimelineEntry, fix: Mapping[str, Any]) -> str:
    data = {**entry.data, **{k: v for k, v in fix.items() if k != "occurred_at"}}
    reason = f": {data['reason']}" if data.get("reason") else ""
    kind = entry.kind
    if kind in (Kind.ALERT_RECEIVED, Kind.ALERT_RESOLVED):
        labels = data.get("labels") or {}
        name = labels.get("alertname") or entry.actor.name or "alert"
        state = "firing" if kind is Kind.ALERT_RECEIVED else "resolved"
        where = f" ({labels['service']})" if labels.get("service") else ""
        summary = f": {data['summary']}" if data.get("summary") else ""
        return f"alert {name} {state}{where}{summary}"
    if kind is Kind.INCIDENT_TRIGGERED:
        return f"incident declared, {data.get('severity', '')}, playbook {data.get('playbook', '')}"
    if kind is Kind.SEVERITY_CHANGED:
        return f"severity {data.get('from')} → {data.get('to')}{reason}"
    if kind is Kind.COMMANDER_ASSIGNED:
        return f"commander: {data.get('to') or 'none'}"
    if kind is Kind.NOTE:
        return str(data.get("text", ""))
    if kind is Kind.ACTION_SUCCEEDED:
        return f"{data.get('action')} delivered"
    if kind is Kind.ACTION_FAILED:
        return f"{data.get('action')} failed: {data.get('error', '')}"
    if kind is Kind.TIMER_FIRED:
        return f"{data.get('timer')} timer fired"
    if kind.value.startswith("incident."):
        return kind.value.removeprefix("incident.").replace("_", " ") + reason
    return kind.value + reason


def _responders(incident: Incident, entries: Sequence[TimelineEntry]) -> list[dict[str, Any]]:
    commanders = [str(e.data.get("to")) for e in entries if e.kind is Kind.COMMANDER_ASSIGNED]
    seen: dict[str, dict[str, Any]] = {}
    did: dict[str, Counter[str]] = {}
    for entry in entries:
        if entry.actor.kind not in PEOPLE:
            continue
        name = entry.actor.name or entry.actor.id
        seen.setdefault(
            name, {"name": name, "via": entry.actor.kind.value, "first": utc(entry.occurred_at)}
        )
        counts = did.setdefault(name, Counter())
        if entry.kind in _DID:  # not the bookkeeping their actions caused
            counts[_DID[entry.kind]] += 1
    for name in [*commanders, incident.commander]:
        if name and name not in seen:
            seen[name] = {"name": name, "via": "", "first": ""}
            did[name] = Counter()
    out = []
    for name, person in seen.items():
        if name == incident.commander:
            role = "incident commander"
        elif name in commanders:
            role = "incident commander (handed over)"
        else:
            role = "responder"
        actions = ", ".join(
            what if count == 1 else f"{what} x{count}" for what, count in did[name].items()
        )
        out.append({**person, "role": role, "did": actions})
    return out


def _delivery(delivery: Delivery) -> dict[str, Any]:
    params = delivery.params
    name = delivery.name
    if name == "pagerduty.trigger":
        target = f"PagerDuty {params.get('service', '')} ({params.get('urgency', 'high')} urgency)"
    elif name == "pagerduty.escalate":
        target = f"escalation level {params.get('level')}"
    elif name == "slack.open_channel":
        target = f"#{params.get('name', '')}"
    elif name == "slack.post":
        target = str(params.get("channel") or "incident channel")
        if params.get("template"):
            target += f" (template {params['template']})"
    elif name == "slack.update_summary":
        target = "pinned summary"
    else:
        target = "the incident's pages" if name.startswith("pagerduty.") else ""
    return {
        "kind": "page" if name.startswith("pagerduty.") else "message",
        "action": name,
        "target": target,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "at": utc(delivery.delivered_at) if delivery.delivered_at else "—",
        "error": delivery.last_error if delivery.status != "delivered" else "",
    }


def _playbook(incident: Incident, playbook: Playbook | None) -> dict[str, Any]:
    policy = ""
    if incident.policy:
        try:
            policy = EscalationPolicy.model_validate(incident.policy).describe()
        except ValueError:  # a snapshot an older version wrote differently: show it as stored
            policy = json.dumps(incident.policy, sort_keys=True)
    current = playbook is not None and playbook.version == incident.playbook_version
    return {
        "name": incident.playbook,
        "version": incident.playbook_version,
        "changed_since": playbook is not None and not current,
        "owner": playbook.owner if playbook else "",
        "runbook": (playbook.runbook or "") if playbook else "",
        "policy": policy or "its playbook's policy at the time (no snapshot)",
        "required_when": playbook.postmortem.required_when
        if playbook and playbook.postmortem
        else "",
    }
