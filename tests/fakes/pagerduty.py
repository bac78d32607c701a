"""A local fake of PagerDuty (Events API v2, REST API v2, v3 webhooks) for the official client."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.pagerduty_rest import RestApi, not_found, rest_error
from fakes.pagerduty_spec import Api, SpecChecker
from fakes.pagerduty_state import PUBLIC_API_URL, Json, Renderer, State
from fakes.pagerduty_webhooks import build_webhook_body, send_webhook, sign

__all__ = ["FakePagerDuty", "ReceivedEvent", "RecordedRequest", "send_webhook", "sign"]
from orchestrator.clock import Clock

EVENTS_PATHS = ("/v2/enqueue", "/v2/change/enqueue")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# The status a webhook event type leaves its incident in; PagerDuty changes it before sending.
WEBHOOK_STATUS = {
    "incident.triggered": "triggered",
    "incident.reopened": "triggered",
    "incident.unacknowledged": "triggered",
    "incident.acknowledged": "acknowledged",
    "incident.resolved": "resolved",
}

Handler = Callable[[Request, Any], Response]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    status: int


@dataclass(frozen=True)
class ReceivedEvent:
    """One body posted to the Events API (None if it was not JSON), the status the fake
    answered, and the incident it opened or touched."""

    path: str
    body: Any
    status: int
    incident_id: str | None


@dataclass
class _Fault:
    path: str
    status: int
    retry_after: float | None
    remaining: int
    body: Any = field(default=None)


def _event_error(
    errors: list[str],
    status: str = "invalid event",
    message: str = "Event object is invalid",
) -> JSONResponse:
    body = {"status": status, "message": message, "errors": errors}
    return JSONResponse(body, status_code=400)


def _default_fault_body(is_events: bool, status: int) -> Json:
    if status == 429:
        if is_events:
            return {"status": "throttle event", "message": "Requests are arriving too quickly"}
        return {"error": {"message": "Rate Limit Exceeded", "code": 2020}}
    message = {503: "Service Unavailable", 502: "Bad Gateway", 500: "Internal Server Error"}
    text = message.get(status, f"Injected failure {status}")
    return {"status": "error", "message": text} if is_events else {"error": {"message": text}}


class FakePagerDuty(State):
    """State plus a Starlette `app` speaking PagerDuty's Events v2 and REST v2 on one origin.

    Assert on `events`, `incidents` (by dedup key), `incidents_created`, `deduplicated`,
    `requests` and `violations` (requests that break PagerDuty's published contract)."""

    def __init__(
        self,
        *,
        routing_keys: Mapping[str, str] | None = None,
        api_token: str = "fake-pagerduty-rest-token",
        subdomain: str = "fake-orchestrator",
        clock: Clock | None = None,
        specs_folder: Path | None = None,
        api_url: str | None = None,
    ) -> None:
        super().__init__(
            routing_keys=routing_keys, api_token=api_token, subdomain=subdomain, clock=clock
        )
        self.events: list[ReceivedEvent] = []
        self.change_events: list[Json] = []
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self._checker = SpecChecker(specs_folder)
        self.spec_check_skipped_reason: str | None = self._checker.skipped_reason
        self._faults: list[_Fault] = []
        self._outage = False
        self._delay = 0.0
        self._rest = RestApi(self, api_url)
        self._api_url = api_url
        routes = [
            Route("/v2/enqueue", self._wrap(self._enqueue), methods=["POST"]),
            Route("/v2/change/enqueue", self._wrap(self._change_enqueue), methods=["POST"]),
        ]
        for path, handler in self._rest.routes():
            routes.append(Route(path, self._wrap(self._rest_call(handler)), methods=["GET"]))
        for path, method, write in self._rest.write_routes():
            routes.append(Route(path, self._wrap(self._rest_write(write)), methods=[method]))
        routes.append(Route("/{rest:path}", self._wrap(self._unknown), methods=ALL_METHODS))
        self.app = Starlette(routes=routes)

    # Fault injection: the test thread sets these, the server thread reads them under the lock.

    def fail_next(
        self,
        path: str,
        *,
        status: int,
        retry_after: float | None = None,
        times: int = 1,
        body: Any = None,
    ) -> None:
        """The next `times` requests to `path` ("*" for any) get `status`, with a Retry-After
        header when given and PagerDuty's error body unless `body` replaces it."""
        with self.lock:
            self._faults.append(_Fault(path, status, retry_after, times, body))

    def outage(self, on: bool = True) -> None:
        """While on, every request is answered 503."""
        with self.lock:
            self._outage = on

    def delay(self, seconds: float) -> None:
        """Every later request waits this long before it is answered (0 to stop)."""
        with self.lock:
            self._delay = max(seconds, 0.0)

    # Webhooks (PagerDuty -> app).

    def webhook_body(
        self, event_type: str, incident_key_or_id: str, agent_user_id: str | None
    ) -> bytes:
        """A v3 webhook body for the incident with this dedup key or id, as `agent` did it.

        The incident first takes the status the event implies (an `incident.acknowledged`
        acknowledges it, `incident.escalated` moves it a level up), as in PagerDuty, where
        the webhook reports a change that already happened; REST reads then agree with it."""
        with self.lock:
            found = self.find_incident(incident_key_or_id)
            if found is None:
                raise KeyError(f"no incident with dedup key or id {incident_key_or_id!r}")
            if event_type in WEBHOOK_STATUS:
                self.change_status(found, WEBHOOK_STATUS[event_type], agent_user_id)
            elif event_type == "incident.escalated":
                found.escalation_level += 1
            render = Renderer(self, self._api_url or PUBLIC_API_URL)
            agent = render.user_ref(agent_user_id) if agent_user_id is not None else None
            return build_webhook_body(
                event_type, render.incident(found), agent, occurred_at=self.clock.now()
            )

    # Request handling.

    def _wrap(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            request.state.body = request.state.incident_id = None
            response = await self._answer(request, handler)
            path, status = request.url.path, response.status_code
            with self.lock:
                self.requests.append(
                    RecordedRequest(request.method, path, request.url.query, status)
                )
                if path in EVENTS_PATHS:
                    state = request.state
                    self.events.append(ReceivedEvent(path, state.body, status, state.incident_id))
            return response

        return endpoint

    async def _answer(self, request: Request, handler: Handler) -> Response:
        path = request.url.path
        is_events = path in EVENTS_PATHS
        api: Api = "events" if is_events else "rest"
        raw = await request.body()
        body: Any = None
        parse_error = ""
        if raw:
            try:
                body = request.state.body = json.loads(raw)
            except ValueError as error:
                parse_error = str(error)
        problems = self._checker.request_problems(
            api,
            request.method,
            path,
            request.query_params.multi_items(),
            request.headers,
            has_body=bool(raw),
        )
        body_problems = (
            [] if parse_error else self._checker.body_problems(api, request.method, path, body)
        )
        with self.lock:
            self.violations.extend(problems + body_problems)
            delay, outage, fault = self._delay, self._outage, self._take_fault(path)
        if delay:
            await asyncio.sleep(delay)
        if outage:
            return JSONResponse(_default_fault_body(is_events, 503), status_code=503)
        if fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            content = (
                fault.body
                if fault.body is not None
                else _default_fault_body(is_events, fault.status)
            )
            if isinstance(content, str | bytes):
                return Response(content, status_code=fault.status, headers=headers)
            return JSONResponse(content, status_code=fault.status, headers=headers)
        if (
            not is_events
            and request.headers.get("authorization") != f"Token token={self.api_token}"
        ):
            return rest_error(401, "Authentication Required", 2006)
        if parse_error:
            if is_events:
                unrecognized = "Event object format is unrecognized"
                return _event_error(["JSON parse error"], "Unrecognized object", unrecognized)
            return rest_error(400, "Invalid Input Provided", 2001, [parse_error])
        if body_problems:
            if is_events:
                return _event_error(body_problems)
            return rest_error(400, "Invalid Input Provided", 2001, body_problems)
        return handler(request, body)

    def _take_fault(self, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.path in (path, "*"):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _rest_call(self, handler: Callable[[Request], Response]) -> Handler:
        def call(request: Request, _body: Any) -> Response:
            with self.lock:
                return handler(request)

        return call

    def _rest_write(self, handler: Callable[[Request, Any], Response]) -> Handler:
        def call(request: Request, body: Any) -> Response:
            with self.lock:
                return handler(request, body)

        return call

    def _unknown(self, request: Request, _body: Any) -> Response:
        # The spec check has already recorded paths PagerDuty lacks; this one it may have.
        message = f"the fake PagerDuty does not implement {request.method} {request.url.path}"
        if not self._checker.knows("rest", request.method, request.url.path):
            return not_found()
        return rest_error(501, message, 0)

    def _enqueue(self, request: Request, body: Any) -> Response:
        errors = _event_problems(body)
        with self.lock:
            where = f"POST {request.url.path}"
            self.violations.extend(f"{where}: {error}" for error in errors)
            service = None
            if not errors:
                service = self.service_for_key(str(body.get("routing_key")))
                if service is None:
                    errors = ["Invalid routing key"]
            if errors or service is None:
                return _event_error(errors)
            action = body["event_action"]
            dedup_key = body.get("dedup_key") or uuid.uuid4().hex
            incident = self.open_incident(dedup_key)
            if action == "trigger":
                if incident is None:
                    incident = self.create_incident(dedup_key, service, body)
                else:
                    incident.events.append(body)
                    self.deduplicated += 1
            elif incident is not None:
                # PagerDuty accepts acknowledges and resolves for unknown or closed keys
                # and drops them, so those answer 202 with no incident touched.
                incident.events.append(body)
                target = "acknowledged" if action == "acknowledge" else "resolved"
                self.change_status(incident, target)
            request.state.incident_id = incident.id if incident is not None else None
        answer = {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
        return JSONResponse(answer, status_code=202)

    def _change_enqueue(self, request: Request, body: Any) -> Response:
        payload = body.get("payload") if isinstance(body, dict) else None
        errors = [] if isinstance(payload, dict) else ["'payload' is missing or not an object"]
        if isinstance(payload, dict):
            errors += _summary_problems(payload)
        with self.lock:
            self.violations.extend(f"POST {request.url.path}: {error}" for error in errors)
            if not errors and self.service_for_key(str(body.get("routing_key"))) is None:
                errors = ["Invalid routing key"]
            if errors:
                return _event_error(errors)
            self.change_events.append(body)
        return JSONResponse({"status": "success", "message": "Change event processed"}, 202)


def _summary_problems(payload: Mapping[str, Any]) -> list[str]:
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        return ["'payload.summary' is missing or blank"]
    if len(summary) > MAX_SUMMARY:
        return [f"Length of 'payload.summary' is incorrect (should be at most {MAX_SUMMARY})"]
    return []


def _event_problems(body: Any) -> list[str]:
    """PagerDuty's own rules, enforced with or without the published description at hand."""
    if not isinstance(body, dict):
        return ["Event object is not a JSON object"]
    errors = []
    if not isinstance(body.get("routing_key"), str):
        errors.append("'routing_key' is missing or not a string")
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' is invalid (must be trigger, acknowledge or resolve)")
    dedup_key = body.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > MAX_DEDUP_KEY):
        errors.append(f"'dedup_key' must be a string of at most {MAX_DEDUP_KEY} characters")
    if action in ("acknowledge", "resolve") and not dedup_key:
        errors.append(f"'dedup_key' is required to {action}")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is missing or not an object"]
        errors += _summary_problems(payload)
        if not isinstance(payload.get("source"), str) or not payload["source"].strip():
            errors.append("'payload.source' is missing or blank")
        if payload.get("severity") not in SEVERITIES:
            errors.append(f"'payload.severity' is invalid (must be one of {', '.join(SEVERITIES)})")
    return errors
