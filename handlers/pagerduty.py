"""The PagerDuty handler: pages, acknowledges, resolves and escalates through PagerDuty's APIs."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pagerduty
from opentelemetry.trace import Tracer

from handlers.client_spans import trace_httpx2
from handlers.pagerduty_events import trigger_event
from orchestrator.actions import Action, ActionResult

T = TypeVar("T")

TRIGGER = "pagerduty.trigger"
# Statuses worth another try later: the request may well succeed once PagerDuty recovers.
RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class PagerDutyService:
    """One service playbooks page by name: its Events API v2 integration key, and the
    escalation policy whose on-call people are looked up (and recorded) at page time."""

    routing_key: str
    escalation_policy: str | None = None
    schedule: str | None = None  # or whose on-call rotation to look up instead of a policy


ROUTING_KEY_LENGTH = 32  # an Events API v2 integration key


class OnCallLookupError(RuntimeError):
    """Who is on call could not be found out; the message says why."""


class _FailureError(Exception):
    """Carries the failure a vendor error maps to out of nested calls."""

    def __init__(self, result: ActionResult) -> None:
        super().__init__(result.detail)
        self.result = result


def _single_attempt(client: pagerduty.ApiClient, timeout: float) -> None:
    """The dispatcher owns retries and backoff, so each call must be exactly one request.

    Left alone, the client retries a 429 forever (and the Events client some 5xx several
    times), sleeping in our worker thread. It gives up on a status once that status's count
    reaches `retry[status]` or the total exceeds `max_http_attempts`; a total of -1 is
    exceeded before the first retry. Statuses without an entry are returned at once, and a
    network error is raised at once when no network retries are allowed."""
    client.retry = {429: 1}
    client.max_http_attempts = -1
    client.max_network_attempts = 0
    # Declared int by the client, but handed straight to httpx2, which takes any seconds.
    client.timeout = timeout  # type: ignore[assignment]


def _vendor_message(response: Any) -> str:
    """PagerDuty's own words: Events API `{message, errors}`, REST `{error: {message, errors}}`."""
    try:
        body = response.json()
    except ValueError:
        return str(response.text)[:300]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if not isinstance(body, dict):
        return str(body)[:300]
    message = str(body.get("message", "")) or str(body.get("status", ""))
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        message = f"{message}: {'; '.join(str(e) for e in errors)}"
    return message


def _retry_after(response: Any) -> float | None:
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None  # absent, or an HTTP date: the dispatcher's backoff applies


def failure_for(error: Exception, what: str) -> ActionResult:
    """Maps a client error to a failure the dispatcher can act on."""
    if isinstance(error, pagerduty.UrlError):
        return ActionResult.failure(f"PagerDuty URL misconfigured for {what}: {error}")
    response = getattr(error, "response", None)
    if isinstance(error, pagerduty.HttpError) and response is not None:
        status = int(response.status_code)
        detail = f"PagerDuty answered {status} to {what}: {_vendor_message(response)}"
        if status == 429:
            return ActionResult.failure(detail, retryable=True, retry_after=_retry_after(response))
        retryable = status >= 500 or status in RETRYABLE_STATUSES
        if status < 300:
            # A success the client could not read (not JSON): the request is idempotent.
            detail, retryable = f"PagerDuty gave an unreadable answer to {what}", True
        return ActionResult.failure(detail, retryable=retryable)
    # Network errors, timeouts and TLS failures: PagerDuty may not even have seen it.
    cause = error.__cause__ or error
    return ActionResult.failure(
        f"PagerDuty unreachable for {what}: {type(cause).__name__}: {cause}", retryable=True
    )


def _unique(values: Iterable[T]) -> list[T]:
    return list(dict.fromkeys(values))


class PagerDutyHandler:
    """Delivers the pagerduty.* actions through the official (synchronous) clients, each call
    in a worker thread. Vendor errors come back as failures, never as exceptions. Each HTTP
    request is a client span under the delivery's, through `tracer` (the global one by default):
    the worker thread runs in a copy of the caller's context."""

    name = "pagerduty"
    handles = frozenset(
        {"pagerduty.trigger", "pagerduty.escalate", "pagerduty.acknowledge", "pagerduty.resolve"}
    )

    def __init__(
        self,
        services: Mapping[str, PagerDutyService],
        *,
        api_token: str | None = None,
        events_url: str | None = None,
        rest_url: str | None = None,
        verify: ssl.SSLContext | bool = True,
        dedup_prefix: str = "orch",
        from_email: str | None = None,
        timeout: float = 10.0,
        tracer: Tracer | None = None,
    ) -> None:
        self.services = dict(services)
        self.dedup_prefix = dedup_prefix
        self.from_email = from_email
        # One Events client per integration key: the client writes its key into every body.
        self._events: dict[str, pagerduty.EventsApiV2Client] = {}
        for service in self.services.values():
            if service.routing_key not in self._events:
                client = pagerduty.EventsApiV2Client(
                    service.routing_key, base_url=events_url, verify=verify
                )
                _single_attempt(client, timeout)
                trace_httpx2(client, "pagerduty", tracer=tracer)
                self._events[service.routing_key] = client
        self._rest: pagerduty.RestApiV2Client | None = None
        if api_token:
            self._rest = pagerduty.RestApiV2Client(api_token, base_url=rest_url, verify=verify)
            _single_attempt(self._rest, timeout)
            trace_httpx2(self._rest, "pagerduty", tracer=tracer)

    def dedup_key(self, action_key: str) -> str:
        """Deterministic per action, so a retried or redelivered trigger never opens a second
        PagerDuty incident; the prefix tells our incidents apart in inbound webhooks."""
        return f"{self.dedup_prefix}-{action_key}"

    async def deliver(self, action: Action) -> ActionResult:
        try:
            if action.name == "pagerduty.trigger":
                return await self._trigger(action)
            if action.name in ("pagerduty.acknowledge", "pagerduty.resolve"):
                return await self._acknowledge_or_resolve(action)
            if action.name == "pagerduty.escalate":
                return await self._escalate(action)
            return ActionResult.failure(f"the PagerDuty handler does not deliver {action.name}")
        except _FailureError as failed:
            return failed.result
        except Exception as err:  # a bug here must not escape into the dispatcher loop
            return ActionResult.failure(
                f"PagerDuty handler error: {type(err).__name__}: {err}", retryable=True
            )

    async def close(self) -> None:
        clients: list[pagerduty.ApiClient] = [*self._events.values()]
        if self._rest is not None:
            clients.append(self._rest)
        for client in clients:
            await asyncio.to_thread(client.close)

    async def check(self) -> list[tuple[bool, str]]:
        """The configuration, tested for `orchestrator config check`. Routing keys are checked
        for form only: the Events API has no way to test one without paging somebody."""
        found: list[tuple[bool, str]] = []
        for name, service in sorted(self.services.items()):
            size = len(service.routing_key)
            if size != ROUTING_KEY_LENGTH:
                found.append(
                    (False, f"PagerDuty {name}: the routing key has {size} characters, not 32")
                )
            else:
                found.append((True, f"PagerDuty {name}: routing key well-formed (not sent)"))
        rest = self._rest
        if rest is None:
            found.append((True, "PagerDuty REST API: no token (no on-call lookups, no escalation)"))
            return found
        looked_up = {s.escalation_policy for s in self.services.values() if s.escalation_policy}
        paths = [f"escalation_policies/{policy}" for policy in sorted(looked_up)] or ["users"]
        for path in paths:
            try:
                await self._call(path, functools.partial(rest.rget, path))
            except _FailureError as err:
                found.append((False, f"PagerDuty REST {path}: {err.result.detail}"))
            else:
                found.append((True, f"PagerDuty REST {path}: found, the token is accepted"))
        return found

    async def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(call)
        except (pagerduty.Error, pagerduty.UrlError) as err:
            raise _FailureError(failure_for(err, what)) from err

    def _service(self, name: str) -> PagerDutyService:
        service = self.services.get(name)
        if service is None:
            known = ", ".join(sorted(self.services)) or "none"
            raise _FailureError(
                ActionResult.failure(
                    f"unknown PagerDuty service {name!r}; configured services: {known}"
                )
            )
        return service

    # pagerduty.trigger

    async def _trigger(self, action: Action) -> ActionResult:
        service_name = str(action.params.get("service", ""))
        service = self._service(service_name)
        dedup_key = self.dedup_key(action.key)
        event = trigger_event(action)
        client = self._events[service.routing_key]
        sent = await self._call(
            f"trigger {dedup_key}",
            lambda: client.send_event("trigger", dedup_key=dedup_key, **event),
        )
        detail = f"paged {service_name} (dedup key {sent})"
        data: dict[str, Any] = {"dedup_key": sent, "service": service_name}
        if self._rest is not None and (service.escalation_policy or service.schedule):
            # Who was on call at page time is audit evidence; failing to learn it must not
            # fail (and so repeat) a page that went out.
            try:
                data["oncall"] = await self.oncall(service_name)
            except OnCallLookupError as err:
                data["oncall_error"] = str(err)
        if self._rest is not None:
            data |= await self._incident_link(str(sent))
        return ActionResult.success(detail, **data)

    async def _incident_link(self, dedup_key: str) -> dict[str, str]:
        """The PagerDuty incident's id and page, for the Slack bookmark. Best effort: PagerDuty
        creates incidents asynchronously, and a page must not fail over a missing link."""
        rest = self._rest
        assert rest is not None
        try:
            found = await self._call(
                f"find incident {dedup_key}",
                lambda: rest.list_all("incidents", params={"incident_key": dedup_key}),
            )
        except _FailureError:
            return {}
        if not found:
            return {}
        return {"incident_id": str(found[-1]["id"]), "incident_url": str(found[-1]["html_url"])}

    async def oncall(self, service: str) -> list[dict[str, Any]]:
        """Who is on call now for the service's escalation policy, lowest level first, as
        {"level", "user_id", "name", "email"}; [] when no policy or API token is configured.

        Raises OnCallLookupError for an unknown service or when PagerDuty cannot answer."""
        try:
            known = self._service(service)
        except _FailureError as failed:
            raise OnCallLookupError(failed.result.detail) from None
        rest = self._rest
        if rest is None or not (known.escalation_policy or known.schedule):
            return []
        params: dict[str, Any] = {"include": ["users"], "earliest": True}
        if known.escalation_policy:
            params["escalation_policy_ids"] = [known.escalation_policy]
        else:
            params["schedule_ids"] = [known.schedule]
        try:
            found = await self._call(
                "the on-call lookup", lambda: rest.list_all("oncalls", params=params)
            )
        except _FailureError as failed:
            raise OnCallLookupError(failed.result.detail) from None
        people = []
        for entry in found:
            user = entry.get("user") or {}
            people.append(
                {
                    "level": entry.get("escalation_level"),
                    "user_id": user.get("id"),
                    "name": user.get("name") or user.get("summary"),
                    "email": user.get("email"),
                }
            )
        return sorted(_unique_people(people), key=lambda p: (p["level"] or 0, p["user_id"] or ""))

    @staticmethod
    def oncall_emails(
        oncall: Iterable[Mapping[str, Any]], *, max_level: int | None = None
    ) -> list[str]:
        """The email addresses in an on-call list (optionally only up to a level), in order
        and without repeats: what a Slack handler needs to invite the responders."""
        return _unique(
            str(person["email"])
            for person in oncall
            if person.get("email")
            and (max_level is None or (person.get("level") or 0) <= max_level)
        )

    # pagerduty.acknowledge / pagerduty.resolve

    async def _acknowledge_or_resolve(self, action: Action) -> ActionResult:
        verb = action.name.removeprefix("pagerduty.")
        paged = paged_keys(action)
        if not paged:
            return ActionResult.success("nothing was paged for this incident")
        for dedup_key, service_name in paged:
            client = self._events[self._service(service_name).routing_key]
            send = functools.partial(client.send_event, verb, dedup_key=dedup_key)
            await self._call(f"{verb} {dedup_key}", send)
        keys = [key for key, _ in paged]
        return ActionResult.success(f"{verb}d {', '.join(keys)}", dedup_keys=keys)

    # pagerduty.escalate

    async def _escalate(self, action: Action) -> ActionResult:
        level = int(action.params.get("level", 0))
        rest = self._rest
        missing = [
            setting
            for setting, value in (("api_token", rest), ("from_email", self.from_email))
            if not value
        ]
        if missing or rest is None:
            return ActionResult.failure(
                f"cannot escalate: the PagerDuty handler has no {' or '.join(missing)} "
                "(escalating goes through the REST API)"
            )
        paged = paged_keys(action)
        if not paged:
            return ActionResult.success("nothing was paged for this incident")
        dedup_key = paged[-1][0]
        found = await self._call(
            f"find incident {dedup_key}",
            lambda: rest.list_all("incidents", params={"incident_key": dedup_key}),
        )
        if not found:
            # Events are processed asynchronously: the incident may not exist just yet.
            return ActionResult.failure(
                f"no PagerDuty incident with key {dedup_key} (yet)", retryable=True
            )
        still_open = [i for i in found if i.get("status") != "resolved"]
        if not still_open:
            return ActionResult.success(
                f"PagerDuty incident {dedup_key} is resolved; not escalated", dedup_key=dedup_key
            )
        incident_id = str(still_open[-1]["id"])
        body = {"incident": {"type": "incident_reference", "escalation_level": level}}
        headers = {"From": str(self.from_email)}
        await self._call(
            f"escalate {incident_id}",
            lambda: rest.rput(f"/incidents/{incident_id}", json=body, headers=headers),
        )
        return ActionResult.success(
            f"escalated PagerDuty incident {incident_id} to level {level}",
            dedup_key=dedup_key,
            incident_id=incident_id,
            escalation_level=level,
        )


def _unique_people(people: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[tuple[Any, Any]] = set()
    kept = []
    for person in people:
        key = (person["level"], person["user_id"])
        if key not in seen:
            seen.add(key)
            kept.append(person)
    return kept


def paged_keys(action: Action) -> list[tuple[str, str]]:
    """(dedup key, service) of every page this incident's delivered triggers opened, oldest
    first: acknowledging or resolving the incident means all of them."""
    found = [
        (str(done.result["dedup_key"]), str(done.result.get("service", "")))
        for done in action.history
        if done.name == TRIGGER and done.result.get("dedup_key")
    ]
    return _unique(found)
