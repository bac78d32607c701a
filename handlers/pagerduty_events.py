"""What a page says: the Events API v2 fields of a trigger, built from the action and the
incident snapshot it carries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.actions import Action

MAX_SUMMARY = 1024  # PagerDuty refuses a longer payload.summary
DEFAULT_SOURCE = "incident-orchestrator"
SEVERITIES = {
    "SEV1": "critical",
    "SEV2": "error",
    "SEV3": "warning",
    "SEV4": "info",
    "SEV5": "info",
}


def _truncate(text: str, limit: int = MAX_SUMMARY) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trigger_event(action: Action) -> dict[str, Any]:
    """The trigger's payload and links."""
    params = action.params
    incident: Mapping[str, Any] = params.get("incident") or {}
    labels: Mapping[str, Any] = incident.get("labels") or {}
    severity = str(incident.get("severity", ""))
    service = str(incident.get("service") or "")
    summary = str(params.get("summary") or incident.get("title") or "")
    summary = summary.strip() or f"Incident #{action.incident_number}"
    details: dict[str, Any] = {
        "incident": incident.get("number", action.incident_number),
        "severity": severity,
        "urgency": params.get("urgency", "high"),
        "playbook": incident.get("playbook", ""),
        "labels": dict(labels),
    }
    if action.is_drill:
        details["drill"] = True
    if params.get("render_errors"):
        details["render_errors"] = params["render_errors"]
    payload: dict[str, Any] = {
        "summary": _truncate(summary),
        "source": service or DEFAULT_SOURCE,
        # A snapshot without a known SEV still pages: loudly rather than quietly.
        "severity": SEVERITIES.get(severity, "critical"),
        "custom_details": details,
    }
    optional = {
        "component": labels.get("component") or service,
        "group": incident.get("team"),
        "class": labels.get("alertname"),
    }
    payload.update({field: str(value) for field, value in optional.items() if value})
    links = []
    if incident.get("runbook"):
        links.append({"href": str(incident["runbook"]), "text": "Runbook"})
    channel_url = action.latest_result("slack.open_channel", "channel_url")
    if channel_url:
        links.append({"href": str(channel_url), "text": "Slack channel"})
    event: dict[str, Any] = {"payload": payload}
    if links:
        event["links"] = links
    return event
