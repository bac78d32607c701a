"""Delivering a scenario's injects: alerts through the real ingest path, recorded alerts
re-timed onto the scenario clock, and the news the players hear (chat, customer reports,
severity, someone becoming unavailable) on the drill's incident and in its channel."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from orchestrator.actions import Action
from orchestrator.clock import Clock
from orchestrator.drill.agenda import Item, Message
from orchestrator.drill.loader import LoadedScenario
from orchestrator.drill.outcome import span
from orchestrator.drill.players import Absence, Cast
from orchestrator.drill.retime import retimed
from orchestrator.drill.scenario import Inject
from orchestrator.drill.scoring import INJECT_ACTOR
from orchestrator.incident.engine import TransitionError
from orchestrator.incident.events import Event, NoteAdded, SeverityChanged
from orchestrator.incident.model import Actor, ActorKind, Incident
from orchestrator.incident.steps import incident_facts
from orchestrator.ingest.alert import SourceFormat
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.render import escape_mrkdwn
from orchestrator.store.sql import SqlStore

Say = Callable[[str, str, str], None]  # (kind, text, ref) onto the run's log
Push = Callable[[dt.datetime, Item, str, str], None]  # (at, what, label, kind) onto the agenda
SLACK_POST = "slack.post"


class Injects:
    def __init__(
        self,
        loaded: LoadedScenario,
        run_id: str,
        pipeline: Pipeline,
        store: SqlStore,
        clock: Clock,
        cast: Cast,
        *,
        say: Say,
        push: Push,
        offset: Callable[[], float],
        post_to_slack: bool,
    ) -> None:
        self.loaded = loaded
        self.scenario = loaded.scenario
        self.run_id = run_id
        self.pipeline = pipeline
        self.store = store
        self.clock = clock
        self.cast = cast
        self.say = say
        self.push = push
        self.offset = offset
        self.post_to_slack = post_to_slack

    async def deliver(self, inject: Inject, label: str, kind: str) -> None:
        if inject.alert is not None:
            alert = inject.alert
            now = self.clock.now().isoformat()
            payload: dict[str, Any] = {
                "labels": alert.labels,
                "annotations": alert.annotations,
                "status": alert.status,
                "starts_at": now,
            }
            if alert.status == "resolved":
                payload["ends_at"] = now
            await self.alert(json.dumps(payload).encode(), label, SourceFormat.NATIVE, kind)
        elif inject.alerts_file is not None:
            recording = self.loaded.recordings[inject.alerts_file.file]
            fmt = SourceFormat(inject.alerts_file.format) if inject.alerts_file.format else None
            moved = retimed(recording, self.clock.now(), fmt)
            self.say(kind, f"replaying {len(moved)} recorded message(s)", label)
            for number, (when, raw) in enumerate(moved, start=1):
                self.push(when, Message(raw, f"{label}#{number}", fmt), label, kind)
        elif inject.chat is not None:
            chat = inject.chat
            self.say(kind, f"chat from {chat.sender}: {chat.text}", label)
            await self._news(f"{chat.sender}: {chat.text}", chat.sender, label)
        elif inject.unavailable is not None:
            away = inject.unavailable
            start = self.offset()
            end = start + away.duration.total_seconds() if away.duration else None
            self.cast.absences.append(Absence(away.role, start, end, away.reason))
            until = f" for {span(end - start)}" if end is not None else ""
            person = self.scenario.person(away.role)
            self.say(kind, f"{person} ({away.role}) is unavailable{until}", label)
        elif inject.severity is not None:
            note = inject.severity
            self.say(kind, f"new information: severity {note.to.value}. {note.reason}", label)
            actor = Actor(ActorKind.DRILL, INJECT_ACTOR, self.scenario.roles.facilitator)
            await self._apply_latest(SeverityChanged(note.to, actor, note.reason or "drill inject"))
        elif inject.customer_report is not None:
            report = inject.customer_report
            many = f" ({report.customers} customers)" if report.customers is not None else ""
            self.say(kind, f"customer report{many}: {report.text}", label)
            await self._news(f"Customer report{many}: {report.text}", "customer support", label)

    async def alert(self, raw: bytes, label: str, fmt: SourceFormat | None, kind: str) -> None:
        """Through the real ingest path, as a webhook or Kafka message would come."""
        report = await self.pipeline.ingest_bytes(raw, f"drill {self.run_id} {label}", format=fmt)
        if report.error is not None:
            self.say(kind, f"alert dead-lettered: {report.error}", label)
            return
        for outcome in report.outcomes:
            where = f" #{outcome.incident_number}" if outcome.incident_number else ""
            playbook = f" ({outcome.playbook})" if outcome.playbook else ""
            self.say(kind, f"alert {outcome.disposition.value}{where}{playbook}", label)

    async def _news(self, text: str, sender: str, label: str) -> None:
        """On the drill incident's timeline as a note, and said in its Slack channel, where
        the players are (a simulated run's sandbox takes it instead)."""
        incident = await self._latest_open()
        if incident is None:
            return  # nothing open yet: the drill's log has it
        banner = self.scenario.classification
        actor = Actor(ActorKind.DRILL, INJECT_ACTOR, sender)
        await self._apply(incident, NoteAdded(f"[{banner}] {text}", actor))
        if self.post_to_slack:
            await self._post(incident, text, label)

    async def _post(self, incident: Incident, text: str, label: str) -> None:
        playbook = self.pipeline.playbooks.get_or_bare(incident.playbook)
        facts = incident_facts(incident, playbook, {"labels": dict(incident.group_labels)})
        action = Action(
            key=f"{incident.number}:{incident.cycle}:drill:{label}",
            name=SLACK_POST,
            params={"text": escape_mrkdwn(text), "incident": facts},
            incident_number=incident.number,
            is_drill=True,
            drill_id=self.run_id,
        )
        async with self.store.transaction() as tx:
            await tx.enqueue_actions([action], self.clock.now())

    async def _apply_latest(self, event: Event) -> None:
        incident = await self._latest_open()
        if incident is not None:
            await self._apply(incident, event)

    async def _apply(self, incident: Incident, event: Event) -> None:
        try:
            await self.pipeline.apply(incident.number, event)
        except TransitionError as err:
            self.say("skipped", f"inject not applied to #{incident.number}: {err}", "")

    async def _latest_open(self) -> Incident | None:
        """Injects go to the drill's newest open incident."""
        open_ones = [i for i in await self.store.drill_incidents(self.run_id) if i.status.is_open]
        return open_ones[-1] if open_ones else None
