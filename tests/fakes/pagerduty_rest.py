"""The REST API v2 endpoints the fake PagerDuty answers: on-calls, users, incidents, policies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fakes.pagerduty_state import OPEN_STATUSES, Json, Renderer, State

DEFAULT_LIMIT = 25
MAX_LIMIT = 100


def rest_error(status: int, message: str, code: int, errors: Sequence[str] = ()) -> JSONResponse:
    """PagerDuty's REST error body: `{"error": {"message", "code", "errors"?}}`."""
    error: Json = {"message": message, "code": code}
    if errors:
        error["errors"] = list(errors)
    return JSONResponse({"error": error}, status_code=status)


def not_found() -> JSONResponse:
    return rest_error(404, "Not Found", 2100)


def _paginate(request: Request, wrapper: str, items: list[Json]) -> Response:
    """Classic (offset) pagination as PagerDuty answers it: `total` is null unless asked for."""
    query = request.query_params
    try:
        limit = int(query.get("limit", DEFAULT_LIMIT))
        offset = int(query.get("offset", 0))
    except ValueError:
        return rest_error(
            400, "Invalid Input Provided", 2001, ["limit and offset must be integers"]
        )
    if limit < 1 or offset < 0:
        return rest_error(400, "Invalid Input Provided", 2001, ["limit or offset out of range"])
    limit = min(limit, MAX_LIMIT)
    page = items[offset : offset + limit]
    return JSONResponse(
        {
            wrapper: page,
            "limit": limit,
            "offset": offset,
            "more": offset + len(page) < len(items),
            "total": len(items) if query.get("total") == "true" else None,
        }
    )


class RestApi:
    """Reads the shared state; `api_url` fixes the `self` links, else each request's own base
    URL is used so the official client can follow them back to the fake."""

    def __init__(self, state: State, api_url: str | None = None) -> None:
        self.state = state
        self.api_url = api_url

    def renderer(self, request: Request) -> Renderer:
        return Renderer(self.state, self.api_url or str(request.base_url))

    def routes(self) -> list[tuple[str, Callable[[Request], Response]]]:
        return [
            ("/oncalls", self.oncalls),
            ("/users", self.users),
            ("/users/{id}", self.user),
            ("/incidents", self.incidents),
            ("/incidents/{id}", self.incident),
            ("/escalation_policies/{id}", self.escalation_policy),
            ("/schedules/{id}", self.schedule),
        ]

    def write_routes(self) -> list[tuple[str, str, Callable[[Request, Any], Response]]]:
        """(path, method, handler) of the calls that change something; they get the parsed
        body, which the spec check has already validated."""
        return [("/incidents/{id}", "PUT", self.update_incident)]

    def oncalls(self, request: Request) -> Response:
        query = request.query_params
        policies = set(query.getlist("escalation_policy_ids[]"))
        schedules = set(query.getlist("schedule_ids[]"))
        users = set(query.getlist("user_ids[]"))
        include = set(query.getlist("include[]"))
        chosen = [
            oncall
            for oncall in self.state.oncalls
            if (not policies or oncall.policy_id in policies)
            and (not users or oncall.user_id in users)
            # PagerDuty documents `null` in schedule_ids[] as "permanent on-calls too".
            and (not schedules or (oncall.schedule_id or "null") in schedules)
        ]
        chosen.sort(key=lambda o: (o.policy_id, o.level, o.start is not None, o.start))
        if query.get("earliest") == "true":
            seen: set[tuple[str, int, str]] = set()
            earliest = []
            for oncall in chosen:
                key = (oncall.policy_id, oncall.level, oncall.user_id)
                if key not in seen:
                    seen.add(key)
                    earliest.append(oncall)
            chosen = earliest
        render = self.renderer(request)
        return _paginate(request, "oncalls", [render.oncall(o, include) for o in chosen])

    def users(self, request: Request) -> Response:
        text = request.query_params.get("query", "").casefold()
        chosen = [
            user.id
            for user in self.state.users.values()
            if text in user.name.casefold() or text in user.email.casefold()
        ]
        render = self.renderer(request)
        return _paginate(request, "users", [render.user(user_id) for user_id in chosen])

    def user(self, request: Request) -> Response:
        user_id = request.path_params["id"]
        if user_id not in self.state.users:
            return not_found()
        return JSONResponse({"user": self.renderer(request).user(user_id)})

    def incidents(self, request: Request) -> Response:
        query = request.query_params
        statuses = set(query.getlist("statuses[]"))
        services = set(query.getlist("service_ids[]"))
        assigned = set(query.getlist("user_ids[]"))
        key = query.get("incident_key")
        chosen = [
            incident
            for incident in self.state.all_incidents
            if (key is None or incident.dedup_key == key)
            and (not statuses or incident.status in statuses)
            and (not services or incident.service_id in services)
            and (
                not assigned
                or (
                    incident.status in OPEN_STATUSES
                    and assigned & set(self.state.assignees(incident))
                )
            )
        ]
        render = self.renderer(request)
        return _paginate(request, "incidents", [render.incident(i) for i in chosen])

    def incident(self, request: Request) -> Response:
        # PagerDuty accepts an incident's number in place of its id here.
        wanted = request.path_params["id"]
        found = next((i for i in self.state.all_incidents if wanted in (i.id, str(i.number))), None)
        if found is None:
            return not_found()
        return JSONResponse({"incident": self.renderer(request).incident(found)})

    def update_incident(self, request: Request, body: Any) -> Response:
        """Moves an incident to another escalation level or status. Like PagerDuty, it wants
        a `From` header naming a user of the account, and a level the policy has."""
        wanted = request.path_params["id"]
        found = next((i for i in self.state.all_incidents if wanted in (i.id, str(i.number))), None)
        if found is None:
            return not_found()
        sender = request.headers.get("from", "")
        if not any(user.email == sender for user in self.state.users.values()):
            return rest_error(400, "Invalid Input Provided", 2001, ["Requester User Not Found"])
        changes = body.get("incident") if isinstance(body, dict) else None
        if not isinstance(changes, dict):
            return rest_error(400, "Invalid Input Provided", 2001, ["incident is required"])
        level = changes.get("escalation_level")
        if level is not None:
            policy = self.state.services[found.service_id].escalation_policy_id
            levels = {o.level for o in self.state.oncalls if o.policy_id == policy}
            if found.status == "resolved":
                return rest_error(400, "Invalid Input Provided", 2001, ["Incident is resolved"])
            if level not in levels:
                message = f"Escalation level {level} is not in the escalation policy"
                return rest_error(400, "Invalid Input Provided", 2001, [message])
            found.escalation_level = level
        status = changes.get("status")
        if status is not None:
            user = next(u.id for u in self.state.users.values() if u.email == sender)
            self.state.change_status(found, str(status), user)
        return JSONResponse({"incident": self.renderer(request).incident(found)})

    def escalation_policy(self, request: Request) -> Response:
        policy_id = request.path_params["id"]
        if policy_id not in self.state.policies:
            return not_found()
        return JSONResponse({"escalation_policy": self.renderer(request).policy(policy_id)})

    def schedule(self, request: Request) -> Response:
        schedule_id = request.path_params["id"]
        if schedule_id not in self.state.schedules:
            return not_found()
        body: Any = self.renderer(request).schedule(schedule_id, full=True)
        return JSONResponse({"schedule": body})
