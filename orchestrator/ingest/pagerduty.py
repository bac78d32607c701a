"""Inbound PagerDuty v3 webhooks: a signed acknowledge or resolve of one of our pages becomes
the same status change on the incident, with the PagerDuty user as actor."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orchestrator.incident.engine import TransitionError
from orchestrator.incident.events import StatusChange
from orchestrator.incident.model import Actor, ActorKind, Status
from orchestrator.pipeline import IncidentNotFoundError, Pipeline

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/pagerduty/webhook"
SIGNATURE_HEADER = "X-PagerDuty-Signature"
STATUS_EVENTS: dict[str, tuple[Status, str]] = {
    "incident.acknowledged": (Status.ACKNOWLEDGED, "acknowledged in PagerDuty"),
    "incident.resolved": (Status.RESOLVED, "resolved in PagerDuty"),
}
# Who acted when PagerDuty names nobody (an auto-resolve, an integration's own event).
UNNAMED_AGENT = Actor(ActorKind.PAGERDUTY, "pagerduty", "PagerDuty")


def signature_matches(body: bytes, secret: str, header: str) -> bool:
    """PagerDuty signs the raw body with HMAC-SHA256 and may send several comma-separated
    `v1=<hex>` values (while a secret is being rotated): any one matching is enough."""
    expected = ("v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()).encode()
    return any(
        hmac.compare_digest(expected, offered.strip().encode())
        for offered in header.split(",")
        if offered.strip()
    )


def parse_dedup_key(key: object, prefix: str) -> tuple[int, int] | None:
    """(incident number, cycle) from one of our dedup keys, `<prefix>-<number>:<cycle>:...`;
    None for any other key (an incident some other integration opened)."""
    if not isinstance(key, str) or not key.startswith(f"{prefix}-"):
        return None
    parts = key.removeprefix(f"{prefix}-").split(":")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1])


def agent_actor(agent: object) -> Actor:
    if not isinstance(agent, Mapping) or not agent.get("id"):
        return UNNAMED_AGENT
    return Actor(ActorKind.PAGERDUTY, str(agent["id"]), str(agent.get("summary") or ""))


def _occurred_at(value: object) -> dt.datetime | None:
    """PagerDuty's time of the change, kept on the timeline next to ours."""
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.astimezone(dt.UTC) if when.tzinfo is not None else None


def _ignored(reason: str) -> JSONResponse:
    return JSONResponse({"ignored": reason})


def pagerduty_routes(pipeline: Pipeline, secret: str, *, dedup_prefix: str = "orch") -> list[Route]:
    """POST /pagerduty/webhook, for a v3 webhook subscription signed with `secret`.

    Whatever is not ours to act on still gets a 200: PagerDuty retries other answers and
    eventually disables the subscription."""
    if not secret:
        raise ValueError("the PagerDuty webhook secret must not be empty")

    async def webhook(request: Request) -> Response:
        body = await request.body()
        if not signature_matches(body, secret, request.headers.get(SIGNATURE_HEADER, "")):
            log.warning(
                "refused a PagerDuty webhook from %s: missing or wrong %s",
                request.client.host if request.client else "an unknown address",
                SIGNATURE_HEADER,
            )
            return JSONResponse({"error": "signature does not match the body"}, status_code=401)
        try:
            document = json.loads(body)
        except ValueError as err:
            return JSONResponse({"error": f"body is not JSON: {err}"}, status_code=400)
        event = document.get("event") if isinstance(document, dict) else None
        if not isinstance(event, dict):
            return JSONResponse({"error": "body has no 'event' object"}, status_code=400)
        return await _apply(event)

    async def _apply(event: Mapping[str, Any]) -> Response:
        event_type = str(event.get("event_type", ""))
        if event_type not in STATUS_EVENTS:
            return _ignored(f"{event_type or 'an event without a type'} is not acted on")
        data = event.get("data")
        key = data.get("incident_key") if isinstance(data, Mapping) else None
        ours = parse_dedup_key(key, dedup_prefix)
        if ours is None:
            return _ignored("not an incident this orchestrator paged")
        number, cycle = ours
        current = await pipeline.store.get_incident(number)
        if current is not None and cycle < current.cycle:
            # A page from before a reopen: its late news must not move the reopened incident.
            log.info("PagerDuty %s for #%d is from cycle %d, ignored", event_type, number, cycle)
            return _ignored(f"about an earlier cycle of incident #{number}")
        status, reason = STATUS_EVENTS[event_type]
        change = StatusChange(
            status, agent_actor(event.get("agent")), reason, _occurred_at(event.get("occurred_at"))
        )
        try:
            await pipeline.apply(number, change)
        except (TransitionError, IncidentNotFoundError) as err:
            # Typically the echo of our own acknowledge or resolve, or a redelivery.
            log.info("PagerDuty %s not applied to #%d: %s", event_type, number, err)
            return _ignored(str(err))
        return JSONResponse({"applied": f"{status.value} #{number}"})

    return [Route(WEBHOOK_PATH, webhook, methods=["POST"])]
