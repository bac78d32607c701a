"""Responses from Slack: signed slash commands, button clicks and marked messages become
pipeline events with the Slack user as actor. Forged, stale or replayed requests stop here."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orchestrator.clock import Clock
from orchestrator.drill.record import DrillStateError, RunState
from orchestrator.incident.engine import TransitionError
from orchestrator.incident.events import (
    CommanderAssigned,
    Event,
    NoteAdded,
    SeverityChanged,
    StatusChange,
)
from orchestrator.incident.model import Actor, ActorKind, Status
from orchestrator.ingest.slack_commands import Command, CommandError, parse_command
from orchestrator.pipeline import IncidentNotFoundError, Pipeline
from orchestrator.report.action_items import ActionItemType
from orchestrator.store.postmortems import FollowUpError, NewActionItem
from orchestrator.store.protocols import Store

log = logging.getLogger(__name__)

REPLAY_WINDOW = 300  # seconds: Slack's own recommendation for request timestamps
OPEN_CHANNEL = "slack.open_channel"
BUTTONS = {"incident.ack": "ack", "incident.escalate": "escalate", "incident.resolve": "resolve"}
DRILL_CONTROLS = {"pause": RunState.PAUSED, "resume": RunState.RUNNING, "endex": RunState.ENDED}
STATUS_VERBS = {
    "ack": Status.ACKNOWLEDGED,
    "mitigated": Status.MITIGATED,
    "resolve": Status.RESOLVED,
}


class _ClockForSlack(SlackClock):
    """slack_sdk's verifier asks its clock for epoch seconds; ours is the injected one."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now().timestamp()


class RequestGuard:
    """Checks Slack's signature over the raw body, the 5-minute timestamp window, and that
    the same signed request is not accepted twice."""

    def __init__(self, signing_secret: str, clock: Clock, *, remember: int = 10_000) -> None:
        if not signing_secret:
            raise ValueError("the Slack signing secret must not be empty")
        self._verifier = SignatureVerifier(signing_secret, clock=_ClockForSlack(clock))
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._remember = remember

    def refusal(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """Why this request must be refused, or None when it is genuine and new."""
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not timestamp or not signature:
            return "missing X-Slack-Signature or X-Slack-Request-Timestamp"
        try:
            age = abs(self._clock.now().timestamp() - int(timestamp))
        except ValueError:
            return f"timestamp {timestamp[:20]!r} is not a number"
        if age > REPLAY_WINDOW:
            return f"timestamp is {age:.0f}s away from now (more than {REPLAY_WINDOW}s)"
        if not self._verifier.is_valid(body, timestamp, signature):
            return "signature does not match the body"
        if signature in self._seen:
            return "this exact request was already received (replayed)"
        self._seen[signature] = float(timestamp)
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return None


@dataclass(frozen=True)
class Authorization:
    """Who may do the consequential things. Empty `responders` means everyone in the
    workspace may; otherwise only those users, or members of those user groups (S...)."""

    restricted: frozenset[str] = frozenset(
        {"resolve", "severity", "commander", "pause", "resume", "endex"}
    )
    responders: frozenset[str] = frozenset()
    group_members: Callable[[str], Awaitable[set[str]]] | None = None

    async def refusal(self, verb: str, user: str) -> str | None:
        if verb not in self.restricted or not self.responders or user in self.responders:
            return None
        for group in (r for r in self.responders if r.startswith("S")):
            if self.group_members is not None and user in await self.group_members(group):
                return None
        return f"only the configured responders may {verb} incidents"


@dataclass
class SlackResponder:
    pipeline: Pipeline
    store: Store
    authorization: Authorization = field(default_factory=Authorization)
    note_reaction: str = "pushpin"
    fetch_message: Callable[[str, str], Awaitable[str | None]] | None = None
    http: httpx.AsyncClient | None = None
    answer_within: float = 2.5  # seconds; Slack waits 3
    _events_seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _late: set[asyncio.Future[None]] = field(default_factory=set)  # answers still coming

    async def command(self, form: Mapping[str, str]) -> dict[str, Any]:
        """A slash command; the answer goes back to the one who typed it (ephemeral).

        Slack gives up on an answer after 3 seconds. Should the store be slow (a long batch
        holding SQLite's lock), the command still completes, and its answer follows through
        the response_url instead."""
        work = asyncio.ensure_future(self._command(form))
        try:
            return await asyncio.wait_for(asyncio.shield(work), self.answer_within)
        except TimeoutError:
            late = asyncio.create_task(self._answer_late(work, form.get("response_url", "")))
            self._late.add(late)
            late.add_done_callback(self._late.discard)
            return {"response_type": "ephemeral", "text": "Working on it; the answer follows."}

    async def _answer_late(self, work: asyncio.Future[dict[str, Any]], response_url: str) -> None:
        answer = await work
        await self._reply(response_url, str(answer["text"]))

    async def _command(self, form: Mapping[str, str]) -> dict[str, Any]:
        user, channel = form.get("user_id", ""), form.get("channel_id", "")
        actor = Actor(ActorKind.SLACK, user, form.get("user_name", ""))
        try:
            command = parse_command(form.get("text", ""))
            text = await self._perform(command, actor, channel)
        except (CommandError, TransitionError, IncidentNotFoundError) as err:
            text = str(err)
        return {"response_type": "ephemeral", "text": text}

    async def interaction(self, payload: Mapping[str, Any]) -> None:
        """A button on the incident summary; refusals go back through the response_url.
        Returns within `answer_within` seconds even if the work goes on afterwards."""
        work = asyncio.ensure_future(self._interaction(payload))
        try:
            await asyncio.wait_for(asyncio.shield(work), self.answer_within)
        except TimeoutError:
            self._late.add(work)
            work.add_done_callback(self._late.discard)

    async def _interaction(self, payload: Mapping[str, Any]) -> None:
        if payload.get("type") != "block_actions":
            return
        user = payload.get("user", {})
        actor = Actor(ActorKind.SLACK, str(user.get("id", "")), str(user.get("username", "")))
        response_url = str(payload.get("response_url", ""))
        for action in payload.get("actions", []):
            verb = BUTTONS.get(str(action.get("action_id", "")))
            if verb is None:
                continue
            value = str(action.get("value", ""))
            if not value.isdigit():
                await self._reply(response_url, "this button does not name an incident")
                continue
            try:
                text = await self._perform(Command(verb, int(value)), actor, "")
            except (TransitionError, IncidentNotFoundError) as err:
                text = str(err)
            await self._reply(response_url, text)

    async def event(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Events API: a marked message (the note reaction, or a pin) becomes a note."""
        if body.get("type") == "url_verification":
            return {"challenge": body.get("challenge", "")}
        event_id = str(body.get("event_id", ""))
        if event_id in self._events_seen:
            return None  # Slack retries events it thinks we missed
        self._events_seen[event_id] = None
        if len(self._events_seen) > 10_000:
            self._events_seen.popitem(last=False)
        event = body.get("event", {})
        text, channel = await self._marked_text(event)
        if text is None:
            return None
        number = await self.store.incident_for_result(OPEN_CHANNEL, "channel_id", channel)
        if number is None:
            return None
        actor = Actor(ActorKind.SLACK, str(event.get("user", "")))
        try:
            await self.pipeline.apply(number, NoteAdded(text, actor))
        except TransitionError as err:
            log.info("marked message not added to #%d: %s", number, err)
        return None

    async def _marked_text(self, event: Mapping[str, Any]) -> tuple[str | None, str]:
        kind = event.get("type")
        item = event.get("item", {})
        channel = str(item.get("channel") or event.get("channel_id") or "")
        if kind == "pin_added":
            return str(item.get("message", {}).get("text", "")) or None, channel
        if kind == "reaction_added" and event.get("reaction") == self.note_reaction:
            if self.fetch_message is None:
                return None, channel
            return await self.fetch_message(channel, str(item.get("ts", ""))), channel
        return None, channel

    async def _perform(self, command: Command, actor: Actor, channel: str) -> str:
        if command.verb == "declare":
            return await self._declare(command, actor)
        number = command.incident
        if number is None:
            number = await self.store.incident_for_result(OPEN_CHANNEL, "channel_id", channel)
            if number is None:
                raise CommandError(
                    "name the incident (e.g. `#42`): this is not an incident channel"
                )
        if refusal := await self.authorization.refusal(command.verb, actor.id):
            return refusal
        if command.verb == "status":
            return await self._status(number)
        if command.verb == "postmortem":
            return await self._postmortem(number)
        if command.verb == "action":
            return await self._action_item(number, command, actor)
        if command.verb in DRILL_CONTROLS:
            return await self._control_drill(number, DRILL_CONTROLS[command.verb])
        if command.verb == "escalate":
            await self.pipeline.escalate(number, actor, "asked from Slack")
            return f"Escalated #{number}: the next level is being paged."
        await self.pipeline.apply(number, _event(command, actor))
        return f"Done: {command.verb} on #{number}."

    async def _control_drill(self, number: int, state: RunState) -> str:
        incident = await self.store.get_incident(number)
        if incident is None:
            raise IncidentNotFoundError(f"no incident #{number}")
        if incident.drill_id is None:
            return f"#{number} is a real incident, not a drill: it has no exercise to control"
        try:
            run = await self.store.set_drill_state(incident.drill_id, state)
        except DrillStateError as err:
            return str(err)
        return f"Drill {run.id}: {state.value}."

    async def _status(self, number: int) -> str:
        incident = await self.store.get_incident(number)
        if incident is None:
            raise IncidentNotFoundError(f"no incident #{number}")
        commander = f"<@{incident.commander}>" if incident.commander else "nobody yet"
        return (
            f"#{incident.number} {incident.title}: {incident.status.value}, "
            f"{incident.severity.value}, commander {commander}"
        )

    async def _postmortem(self, number: int) -> str:
        if await self.store.get_incident(number) is None:
            raise IncidentNotFoundError(f"no incident #{number}")
        found = await self.store.get_postmortem(number)
        items = await self.store.list_action_items(number)
        still_open = sum(1 for item in items if not item.status.is_closed)
        state = (
            f"{found.status.value}, last edited by {found.updated_by}"
            if found is not None
            else "not started"
        )
        return (
            f"Postmortem of #{number}: {state}; {len(items)} action item(s), {still_open} open. "
            f"Draft it with `orchestrator postmortem draft {number}`; add action items here "
            "with `/incident action <what to do> @owner due:YYYY-MM-DD`."
        )

    async def _action_item(self, number: int, command: Command, actor: Actor) -> str:
        item = NewActionItem(
            title=command.text,
            owner=command.user or actor.id,
            due=command.due,
            type=ActionItemType(command.item_type),
        )
        now = self.pipeline.clock.now()
        try:
            added = await self.store.add_action_item(number, item, actor, now)
        except FollowUpError as err:
            return str(err)
        due = f", due {added.due.isoformat()}" if added.due else ""
        return f"Action item {added.id} on #{number}: {added.title} (<@{added.owner}>{due})"

    async def _declare(self, command: Command, actor: Actor) -> str:
        declaration = f"{actor.id}-{self.pipeline.clock.now().timestamp():.6f}"
        labels = {
            "alertname": "DeclaredIncident",
            "declared_by": actor.id,
            "declaration": declaration,  # each declaration is its own incident
        }
        if command.severity is not None:
            labels["severity"] = command.severity.value
        payload = {
            "labels": labels,
            "annotations": {"summary": command.text},
            "id": f"slack-declare-{declaration}",
        }
        report = await self.pipeline.ingest_bytes(json.dumps(payload).encode(), "slack:declare")
        numbers = [o.incident_number for o in report.outcomes if o.incident_number]
        if not numbers:
            return "No playbook takes declared incidents (alertname=DeclaredIncident)."
        return f"Declared #{numbers[0]}: {command.text}"

    async def _reply(self, response_url: str, text: str) -> None:
        if not response_url.startswith("https://") and not response_url.startswith("http://"):
            return
        client = self.http or httpx.AsyncClient(timeout=5.0)
        try:
            await client.post(response_url, json={"response_type": "ephemeral", "text": text})
        except httpx.HTTPError as err:
            log.warning("could not answer a Slack button: %s", err)
        finally:
            if self.http is None:
                await client.aclose()


def _event(command: Command, actor: Actor) -> Event:
    if command.verb in STATUS_VERBS:
        return StatusChange(STATUS_VERBS[command.verb], actor, "from Slack")
    if command.verb == "severity":
        assert command.severity is not None
        return SeverityChanged(command.severity, actor, "from Slack")
    if command.verb == "commander":
        return CommanderAssigned(command.user, actor)
    return NoteAdded(command.text, actor)


def slack_routes(responder: SlackResponder, guard: RequestGuard) -> list[Route]:
    """POST /slack/commands, /slack/interactions and /slack/events, each behind the guard."""

    async def verified(request: Request) -> bytes | Response:
        body = await request.body()
        refusal = guard.refusal(body, request.headers)
        if refusal is not None:
            log.warning("refused a Slack request to %s: %s", request.url.path, refusal)
            return JSONResponse({"error": refusal}, status_code=401)
        return body

    async def commands(request: Request) -> Response:
        body = await verified(request)
        if isinstance(body, Response):
            return body
        return JSONResponse(await responder.command(dict(parse_qsl(body.decode()))))

    async def interactions(request: Request) -> Response:
        body = await verified(request)
        if isinstance(body, Response):
            return body
        form = dict(parse_qsl(body.decode()))
        try:
            payload = json.loads(form.get("payload", ""))
        except json.JSONDecodeError:
            return JSONResponse({"error": "payload: not JSON"}, status_code=400)
        await responder.interaction(payload)
        return Response(status_code=200)

    async def events(request: Request) -> Response:
        body = await verified(request)
        if isinstance(body, Response):
            return body
        try:
            answer = await responder.event(json.loads(body))
        except json.JSONDecodeError:
            return JSONResponse({"error": "body: not JSON"}, status_code=400)
        return JSONResponse(answer) if answer else Response(status_code=200)

    return [
        Route("/slack/commands", commands, methods=["POST"]),
        Route("/slack/interactions", interactions, methods=["POST"]),
        Route("/slack/events", events, methods=["POST"]),
    ]
