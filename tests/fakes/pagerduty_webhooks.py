"""Builds, signs and delivers PagerDuty v3 webhooks, the PagerDuty-to-app direction."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import ssl
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

SIGNATURE_HEADER = "X-PagerDuty-Signature"
WEBHOOK_ID_HEADER = "X-Webhook-Id"
SUBSCRIPTION_HEADER = "X-Webhook-Subscription"
DEFAULT_SUBSCRIPTION_ID = "PSUB001"

# The v3 incident event types PagerDuty documents for webhook subscriptions.
INCIDENT_EVENT_TYPES = frozenset(
    {
        "incident.acknowledged",
        "incident.annotated",
        "incident.delegated",
        "incident.escalated",
        "incident.priority_updated",
        "incident.reassigned",
        "incident.reopened",
        "incident.resolved",
        "incident.responder.added",
        "incident.responder.replied",
        "incident.status_update_published",
        "incident.triggered",
        "incident.unacknowledged",
    }
)


def iso_millis(when: dt.datetime) -> str:
    """PagerDuty's webhook timestamps: UTC with milliseconds and a Z."""
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_webhook_body(
    event_type: str,
    incident: Mapping[str, Any],
    agent: Mapping[str, Any] | None,
    *,
    occurred_at: dt.datetime,
    event_id: str | None = None,
) -> bytes:
    """A v3 webhook: one `event` envelope whose `data` is the incident as the webhook shows it.

    `incident` is the fake's REST rendering of the incident; webhook data is a trimmed copy
    (PagerDuty sends `number` and `assignees`, not `incident_number` and `assignments`)."""
    if event_type not in INCIDENT_EVENT_TYPES:
        raise ValueError(f"{event_type!r} is not a v3 incident event type")
    data = {
        "id": incident["id"],
        "type": "incident",
        "self": incident["self"],
        "html_url": incident["html_url"],
        "number": incident["incident_number"],
        "status": incident["status"],
        "incident_key": incident["incident_key"],
        "created_at": incident["created_at"],
        "title": incident["title"],
        "service": incident["service"],
        "assignees": [a["assignee"] for a in incident.get("assignments", [])],
        "escalation_policy": incident.get("escalation_policy"),
        "teams": incident.get("teams", []),
        "priority": incident.get("priority"),
        "urgency": incident["urgency"],
        "conference_bridge": incident.get("conference_bridge"),
        "resolve_reason": incident.get("resolve_reason"),
    }
    event = {
        "event": {
            "id": event_id or str(uuid.uuid4()),
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": iso_millis(occurred_at),
            "agent": dict(agent) if agent is not None else None,
            "client": None,
            "data": data,
        }
    }
    return json.dumps(event, separators=(",", ":")).encode()


def sign(body: bytes, secret: str) -> str:
    """The `X-PagerDuty-Signature` value: `v1=` and the hex HMAC-SHA256 of the raw body."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def signature_matches(body: bytes, secret: str, header_value: str) -> bool:
    """What a receiver does: PagerDuty may list several comma-separated signatures (during a
    secret rotation); any one matching is enough."""
    expected = sign(body, secret)
    offered = [part.strip() for part in header_value.split(",")]
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)


def send_webhook(
    url: str,
    body: bytes,
    secret: str,
    *,
    verify: ssl.SSLContext | bool = True,
    subscription_id: str = DEFAULT_SUBSCRIPTION_ID,
    webhook_id: str | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    """POSTs `body` the way PagerDuty delivers it, and returns the receiver's answer."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "PagerDuty-Webhook/V3.0",
        SIGNATURE_HEADER: sign(body, secret),
        WEBHOOK_ID_HEADER: webhook_id or str(uuid.uuid4()),
        SUBSCRIPTION_HEADER: subscription_id,
    }
    with httpx.Client(verify=verify, timeout=timeout) as client:
        return client.post(url, content=body, headers=headers)
