"""The fake PagerDuty's account: services, people, on-call, incidents, and their JSON shapes."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.clock import Clock, SystemClock

PUBLIC_API_URL = "https://api.pagerduty.com"
OPEN_STATUSES = ("triggered", "acknowledged")

Json = dict[str, Any]


def iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Service:
    id: str
    name: str
    routing_key: str
    escalation_policy_id: str | None = None


@dataclass
class User:
    id: str
    name: str
    email: str
    time_zone: str = "Etc/UTC"


@dataclass
class Named:
    """A schedule or an escalation policy: only the name matters to the fake."""

    id: str
    name: str


@dataclass
class OnCall:
    policy_id: str
    level: int
    user_id: str
    schedule_id: str | None
    start: dt.datetime | None
    end: dt.datetime | None


@dataclass
class Incident:
    """One incident, opened by a trigger event; `events` are the Events API bodies applied."""

    id: str
    number: int
    dedup_key: str
    service_id: str
    status: str
    summary: str
    severity: str
    source: str
    created_at: dt.datetime
    last_status_change_at: dt.datetime
    custom_details: Any = None
    links: list[Any] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)
    events: list[Json] = field(default_factory=list)
    escalation_level: int = 1
    last_status_change_by: str | None = None


class State:
    """The account the fake answers from. Tests configure it from their thread while the server
    thread reads and changes it, so every change happens under `lock`."""

    def __init__(
        self,
        *,
        routing_keys: Mapping[str, str] | None = None,
        api_token: str = "fake-pagerduty-rest-token",
        subdomain: str = "fake-orchestrator",
        clock: Clock | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.clock: Clock = clock or SystemClock()
        self.api_token = api_token
        self.subdomain = subdomain
        self._ids = itertools.count(1)
        self.services: dict[str, Service] = {}
        self.users: dict[str, User] = {}
        self.schedules: dict[str, Named] = {}
        self.policies: dict[str, Named] = {}
        self.oncalls: list[OnCall] = []
        # The latest incident per dedup key; `all_incidents` keeps those a later trigger replaced.
        self.incidents: dict[str, Incident] = {}
        self.all_incidents: list[Incident] = []
        self.incidents_created = 0
        self.deduplicated = 0
        for routing_key, service_name in (routing_keys or {}).items():
            self.add_service(service_name, routing_key)

    def _new_id(self, kind: str) -> str:
        # PagerDuty ids are short upper-case strings starting with P; a kind letter keeps ids
        # of different objects apart and the counter keeps test output deterministic.
        return f"P{kind}{next(self._ids):05d}"

    def add_service(
        self, name: str, routing_key: str, *, escalation_policy_id: str | None = None
    ) -> str:
        """Registers an Events API v2 integration key for a new service; returns its id."""
        with self.lock:
            service = Service(self._new_id("V"), name, routing_key, escalation_policy_id)
            self.services[service.id] = service
            return service.id

    def add_user(self, name: str, email: str, *, time_zone: str = "Etc/UTC") -> str:
        with self.lock:
            user = User(self._new_id("U"), name, email, time_zone)
            self.users[user.id] = user
            return user.id

    def add_schedule(self, name: str) -> str:
        with self.lock:
            schedule = Named(self._new_id("S"), name)
            self.schedules[schedule.id] = schedule
            return schedule.id

    def add_escalation_policy(self, name: str, *, service_ids: tuple[str, ...] = ()) -> str:
        """A new policy; the services named route their incidents to it."""
        with self.lock:
            policy = Named(self._new_id("E"), name)
            self.policies[policy.id] = policy
            for service_id in service_ids:
                self.services[service_id].escalation_policy_id = policy.id
            return policy.id

    def set_oncall(
        self,
        policy_id: str,
        level: int,
        user_id: str,
        schedule_id: str | None = None,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> None:
        """Puts a user on call at a level of a policy. Through a schedule the shift runs from
        `start` (now) to `end` (a day later); without one it is permanent, and PagerDuty
        reports no schedule, start or end."""
        with self.lock:
            for known, ident in ((self.policies, policy_id), (self.users, user_id)):
                if ident not in known:
                    raise KeyError(ident)
            if schedule_id is not None:
                if schedule_id not in self.schedules:
                    raise KeyError(schedule_id)
                start = start or self.clock.now()
                end = end or start + dt.timedelta(days=1)
            self.oncalls.append(OnCall(policy_id, level, user_id, schedule_id, start, end))

    def service_for_key(self, routing_key: str) -> Service | None:
        return next((s for s in self.services.values() if s.routing_key == routing_key), None)

    def find_incident(self, key_or_id: str) -> Incident | None:
        by_id = next((i for i in self.all_incidents if i.id == key_or_id), None)
        return by_id or self.incidents.get(key_or_id)

    def open_incident(self, dedup_key: str) -> Incident | None:
        incident = self.incidents.get(dedup_key)
        return incident if incident is not None and incident.status in OPEN_STATUSES else None

    def create_incident(self, dedup_key: str, service: Service, event: Json) -> Incident:
        payload = event.get("payload") or {}
        now = self.clock.now()
        self.incidents_created += 1
        incident = Incident(
            id=self._new_id("I"),
            number=self.incidents_created,
            dedup_key=dedup_key,
            service_id=service.id,
            status="triggered",
            summary=str(payload.get("summary", "")),
            severity=str(payload.get("severity", "")),
            source=str(payload.get("source", "")),
            created_at=now,
            last_status_change_at=now,
            custom_details=payload.get("custom_details"),
            links=list(event.get("links") or []),
            images=list(event.get("images") or []),
            events=[event],
        )
        self.incidents[dedup_key] = incident
        self.all_incidents.append(incident)
        return incident

    def change_status(self, incident: Incident, status: str, by_user: str | None = None) -> None:
        if incident.status != status:
            incident.status = status
            incident.last_status_change_at = self.clock.now()
            incident.last_status_change_by = by_user

    def assignees(self, incident: Incident) -> list[str]:
        """Who holds the incident: the users on call at its level of the service's policy."""
        policy_id = self.services[incident.service_id].escalation_policy_id
        return [
            oncall.user_id
            for oncall in self.oncalls
            if oncall.policy_id == policy_id and oncall.level == incident.escalation_level
        ]


class Renderer:
    """PagerDuty's JSON shapes. `self` links point at `api_url` (the fake itself, so a client
    following them stays on the fake); `html_url` links at the account's web address."""

    def __init__(self, state: State, api_url: str) -> None:
        self.state = state
        self.api_url = api_url.rstrip("/")
        self.web_url = f"https://{state.subdomain}.pagerduty.com"

    def reference(self, kind: str, ident: str, summary: str, *, full: bool = False) -> Json:
        plural = "escalation_policies" if kind == "escalation_policy" else f"{kind}s"
        web_path = "service-directory" if kind == "service" else plural
        return {
            "id": ident,
            "type": kind if full else f"{kind}_reference",
            "summary": summary,
            "self": f"{self.api_url}/{plural}/{ident}",
            "html_url": f"{self.web_url}/{web_path}/{ident}",
        }

    def user_ref(self, user_id: str) -> Json:
        return self.reference("user", user_id, self.state.users[user_id].name)

    def user(self, user_id: str) -> Json:
        user = self.state.users[user_id]
        return self.reference("user", user.id, user.name, full=True) | {
            "name": user.name,
            "email": user.email,
            "time_zone": user.time_zone,
            "color": "purple",
            "role": "user",
            "avatar_url": f"{self.web_url}/avatars/{user.id}.png",
            "description": "",
            "invitation_sent": False,
            "job_title": "",
            "teams": [],
            "contact_methods": [],
            "notification_rules": [],
        }

    def schedule(self, schedule_id: str, *, full: bool = False) -> Json:
        schedule = self.state.schedules[schedule_id]
        body = self.reference("schedule", schedule.id, schedule.name, full=full)
        return body | {"name": schedule.name, "time_zone": "Etc/UTC"} if full else body

    def policy_ref(self, policy_id: str) -> Json:
        return self.reference("escalation_policy", policy_id, self.state.policies[policy_id].name)

    def policy(self, policy_id: str) -> Json:
        policy = self.state.policies[policy_id]
        levels = sorted({o.level for o in self.state.oncalls if o.policy_id == policy_id})
        rules = []
        for level in levels:
            targets: list[Json] = []
            for oncall in self.state.oncalls:
                if oncall.policy_id != policy_id or oncall.level != level:
                    continue
                target = (
                    self.user_ref(oncall.user_id)
                    if oncall.schedule_id is None
                    else self.schedule(oncall.schedule_id)
                )
                if target not in targets:
                    targets.append(target)
            rules.append(
                {
                    "id": f"{policy_id}R{level}",
                    "escalation_delay_in_minutes": 30,
                    "targets": targets,
                }
            )
        services = [
            self.reference("service", s.id, s.name)
            for s in self.state.services.values()
            if s.escalation_policy_id == policy_id
        ]
        return self.reference("escalation_policy", policy.id, policy.name, full=True) | {
            "name": policy.name,
            "description": "",
            "num_loops": 0,
            "on_call_handoff_notifications": "if_has_services",
            "escalation_rules": rules,
            "services": services,
            "teams": [],
        }

    def oncall(self, oncall: OnCall, include: set[str]) -> Json:
        schedule: Json | None = None
        if oncall.schedule_id is not None:
            schedule = self.schedule(oncall.schedule_id, full="schedules" in include)
        return {
            "escalation_policy": self.policy(oncall.policy_id)
            if "escalation_policies" in include
            else self.policy_ref(oncall.policy_id),
            "escalation_level": oncall.level,
            "schedule": schedule,
            "user": self.user(oncall.user_id)
            if "users" in include
            else self.user_ref(oncall.user_id),
            "start": iso(oncall.start),
            "end": iso(oncall.end),
        }

    def incident(self, incident: Incident) -> Json:
        service = self.state.services[incident.service_id]
        title = incident.summary
        body = self.reference("incident", incident.id, f"[#{incident.number}] {title}", full=True)
        created = iso(incident.created_at)
        changed_by = incident.last_status_change_by
        return body | {
            "incident_number": incident.number,
            "title": title,
            "description": title,
            "created_at": created,
            "updated_at": iso(incident.last_status_change_at),
            "status": incident.status,
            "incident_key": incident.dedup_key,
            "service": self.reference("service", service.id, service.name),
            "assignments": [
                {"at": created, "assignee": self.user_ref(user_id)}
                for user_id in (
                    self.state.assignees(incident) if incident.status != "resolved" else []
                )
            ],
            "assigned_via": "escalation_policy",
            "last_status_change_at": iso(incident.last_status_change_at),
            "last_status_change_by": self.user_ref(changed_by)
            if changed_by is not None
            else self.reference("service", service.id, service.name),
            "resolved_at": iso(incident.last_status_change_at)
            if incident.status == "resolved"
            else None,
            "alert_counts": {
                "all": 1,
                "triggered": int(incident.status != "resolved"),
                "resolved": int(incident.status == "resolved"),
            },
            "urgency": "high",
            "escalation_policy": self.policy_ref(service.escalation_policy_id)
            if service.escalation_policy_id is not None
            else None,
            "teams": [],
            "priority": None,
            "conference_bridge": None,
            "resolve_reason": None,
            "is_mergeable": True,
        }
