"""The drill runner: plays a scenario's injects and scripted players through the real pipeline,
playbooks, timers and dispatcher, on a clock that jumps from event to event (simulated) or runs
with the wall clock (live), and records what happened and how it scored."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Mapping

from orchestrator.actions import ActionHandler
from orchestrator.clock import Clock, ManualClock, SystemClock
from orchestrator.dispatcher import Dispatcher
from orchestrator.drill.agenda import Agenda, Due, Message
from orchestrator.drill.injects import SLACK_POST, Injects
from orchestrator.drill.loader import LoadedScenario
from orchestrator.drill.outcome import (
    SYSTEM_ACTIONS,
    RunFacts,
    describe,
    run_result,
    span,
)
from orchestrator.drill.players import Cast, event_for
from orchestrator.drill.record import DrillRun, LogLine, Mode, Observation, RunState
from orchestrator.drill.scenario import (
    Do,
    ExpectedAction,
    ScriptedResponse,
)
from orchestrator.drill.scoring import CONTROL_ACTOR, observe, score
from orchestrator.incident.engine import TransitionError
from orchestrator.incident.events import (
    StatusChange,
)
from orchestrator.incident.model import Actor, ActorKind, Incident, Status
from orchestrator.incident.policy import PolicyDefaults
from orchestrator.lifecycle import REFRESH_SUMMARY
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.playbookset import PlaybookSet
from orchestrator.report.action_items import ActionItemType
from orchestrator.report.drill_report import proposed_corrective_actions
from orchestrator.scheduler import TimerService
from orchestrator.store.postmortems import NewActionItem
from orchestrator.store.sql import SqlStore

log = logging.getLogger(__name__)

_STATUS_OF = {
    Do.ACKNOWLEDGE: Status.ACKNOWLEDGED,
    Do.MITIGATE: Status.MITIGATED,
    Do.RESOLVE: Status.RESOLVED,
}


class DrillRunner:
    """One run of a scenario. Everything it opens is flagged as a drill with the run's id, so
    only this runner delivers its actions and fires its timers (never the service)."""

    def __init__(
        self,
        loaded: LoadedScenario,
        store: SqlStore,
        playbooks: PlaybookSet,
        handlers: Mapping[str, ActionHandler],
        *,
        clock: Clock | None = None,
        wall: Clock | None = None,
        live: bool = False,
        policy_defaults: PolicyDefaults | None = None,
        on_log: Callable[[LogLine], None] | None = None,
        poll: float = 1.0,
    ) -> None:
        self.loaded = loaded
        self.scenario = loaded.scenario
        self.store = store
        self.playbooks = playbooks
        self.handlers = dict(handlers)
        self.live = live
        # Simulated: scenario time, moved by the runner from one event to the next.
        self.clock: Clock = clock or ManualClock(self.scenario.clock.start)
        # When, by the wall, the run was held: simulated runs are stamped with real time too.
        self.wall = wall or SystemClock()
        self.policy_defaults = policy_defaults
        self.on_log = on_log or (lambda line: None)
        self.poll = poll
        self.start = self.clock.now()
        self.shift = dt.timedelta(0)  # how long a live drill has been paused, in all
        self.log: list[LogLine] = []
        self.observations: list[Observation] = []
        self._seen: set[tuple[int, int]] = set()
        self.agenda = Agenda()
        self.cast = Cast.of(self.scenario)
        self._triggered: set[int] = set()
        self._contingencies: set[str] = set()
        self._endex_by = "schedule"
        # The runner's own entries (ENDEX, corrective actions): the facilitator's, no player's.
        self._control = Actor(ActorKind.DRILL, CONTROL_ACTOR, self.scenario.roles.facilitator)
        self.run: DrillRun | None = None

    # -- the loop -------------------------------------------------------------------------

    async def play(self) -> DrillRun:
        self.run = await self.store.start_drill_run(
            DrillRun(
                id="",
                scenario_id=self.scenario.id,
                title=self.scenario.title,
                scenario_sha256=self.loaded.sha256,
                scenario=self.loaded.text,
                mode=Mode.LIVE if self.live else Mode.SIMULATED,
                state=RunState.RUNNING,
                started_at=self.wall.now(),
                clock_start=self.start,
            )
        )
        run_id = self.run.id
        self.dispatcher = Dispatcher(self.store, self.handlers, self.clock, drill_id=run_id)
        self.pipeline = Pipeline(
            self.store,
            self.playbooks,
            self.clock,
            drill_id=run_id,
            on_commit=self.dispatcher.wake,
            refresh_slack_summary=REFRESH_SUMMARY in self.handlers,
            policy_defaults=self.policy_defaults,
        )
        self.timers = TimerService(self.store, self.pipeline, self.clock, drill_id=run_id)
        self.injects = Injects(
            self.loaded,
            run_id,
            self.pipeline,
            self.store,
            self.clock,
            self.cast,
            say=self._say,
            push=self.agenda.push,
            offset=self._offset,
            post_to_slack=SLACK_POST in self.handlers,
        )
        self._say("control", f"{self.scenario.classification}: drill {run_id} starts")
        self._schedule_opening()
        end = self.start + self.scenario.duration
        while True:
            await self._settle()
            timer_due = await self.store.next_timer_due(run_id)
            candidates = [end + self.shift]
            if (next_at := self.agenda.next_at()) is not None:
                candidates.append(next_at)
            if timer_due is not None:
                candidates.append(timer_due)
            target = min(candidates)
            if not await self._wait_until(target):
                self._endex_by = "facilitator"
                break
            while (due := self.agenda.pop_due(self.clock.now())) is not None:
                await self._do(due)
                await self._settle()
            if self.clock.now() >= end + self.shift:
                break
        return await self._endex()

    def _schedule_opening(self) -> None:
        for index, inject in enumerate(self.scenario.injects):
            self.agenda.push(self.start + inject.at, inject, inject.label(index), "inject")
        for step in self.scenario.script:
            if step.at is not None:
                self.agenda.push(self.start + step.at, step, step.label, "response")
        for item in self.scenario.expected:
            self.agenda.push(self.start + item.deadline, item, item.id, "deadline")

    async def _wait_until(self, target: dt.datetime) -> bool:
        """Moves scenario time to `target`; False when the facilitator ended the drill."""
        if not self.live:
            assert isinstance(self.clock, ManualClock)
            if target > self.clock.now():
                self.clock.set(target)
            return True
        while (left := (target - self.clock.now()).total_seconds()) > 0:
            await self.clock.sleep(min(left, self.poll * _speed(self.clock)))
            await self._settle()
            state = await self._state()
            if state is RunState.ENDED:
                return False
            if state is RunState.PAUSED:
                paused_at = self.clock.now()
                self._say("control", "paused by the facilitator")
                while (state := await self._state()) is RunState.PAUSED:
                    await self.clock.sleep(self.poll * _speed(self.clock))
                if state is RunState.ENDED:
                    return False
                pause = self.clock.now() - paused_at
                self._say("control", f"resumed after {span(pause.total_seconds())}")
                self.shift += pause
                self.agenda.delay(pause)
                target += pause
        return True

    async def _state(self) -> RunState:
        assert self.run is not None
        found = await self.store.get_drill_run(self.run.id)
        return found.state if found is not None else RunState.ENDED

    async def _settle(self) -> None:
        """Fires the drill's due timers and delivers its actions until nothing more is due,
        then looks at what the timelines show."""
        while True:
            fired = await self.timers.fire_due()
            sent = await self.dispatcher.drain()
            await self._observe()
            if not (fired or sent):
                return

    # -- what happens -----------------------------------------------------------------------

    async def _do(self, due: Due) -> None:
        what = due.what
        if isinstance(what, Message):
            await self.injects.alert(what.raw, what.label, what.format, due.kind)
        elif isinstance(what, ScriptedResponse):
            await self._respond(what, due.label)
        elif isinstance(what, ExpectedAction):
            self._deadline(what)
        else:
            self._trigger_on_inject(due.label)
            await self.injects.deliver(what, due.label, due.kind)

    async def _respond(self, step: ScriptedResponse, label: str) -> None:
        person = self.scenario.person(step.role)
        away = self.cast.away(step.role, self._offset())
        if away is not None:
            reason = f" ({away.reason})" if away.reason else ""
            self._say(
                "skipped", f"{person} ({step.role}) is unavailable{reason}: no response", label
            )
            return
        incidents = await self._incidents()
        if len(incidents) < step.incident:
            self._say("skipped", f"{person}: no incident #{step.incident} of the drill yet", label)
            return
        number = incidents[step.incident - 1].number
        actor = self.cast.actor(step.role)
        try:
            if step.do is Do.ESCALATE:
                await self.pipeline.escalate(number, actor, step.text or "asked for help")
            else:
                await self.pipeline.apply(number, event_for(step, actor))
        except TransitionError as err:
            self._say("skipped", f"{person} could not {step.do.value} #{number}: {err}", label)
            return
        detail = f": {step.text}" if step.text else ""
        self._say("response", f"{person} ({step.role}) {step.do.value} #{number}{detail}", label)

    def _deadline(self, item: ExpectedAction) -> None:
        if score(item, self.observations, contingency_fired=False).met:
            return
        self._say("missed", f"expected {item.action.value} not seen by its deadline", item.id)
        if item.contingency:
            self._contingencies.add(item.id)
        for index, inject in enumerate(item.contingency):
            label = inject.id or f"{item.id}-contingency-{index + 1}"
            self.agenda.push(self.clock.now() + inject.at, inject, label, "contingency")

    # -- watching the timelines ---------------------------------------------------------

    async def _incidents(self) -> list[Incident]:
        assert self.run is not None
        return await self.store.drill_incidents(self.run.id)

    async def _observe(self) -> None:
        for incident in await self._incidents():
            entries = [
                entry
                for entry in await self.store.timeline(incident.number)
                if (incident.number, entry.seq) not in self._seen
            ]
            self._seen.update((incident.number, entry.seq) for entry in entries)
            start = self.start + self.shift
            for seen in observe(entries, incident.number, self.scenario, start):
                self.observations.append(seen)
                who = f" by {seen.actor}" if seen.role or seen.action not in SYSTEM_ACTIONS else ""
                what = describe(seen)
                self._line(seen.offset, seen.at, "observed", f"{what} #{seen.incident}{who}")
                self._trigger_on(seen)

    def _trigger_on(self, seen: Observation) -> None:
        for index, step in enumerate(self.scenario.script):
            trigger = step.on
            if trigger is None or index in self._triggered or trigger.inject is not None:
                continue
            if trigger.observed is None or trigger.observed.value != seen.action:
                continue
            if trigger.level is not None and (seen.level or 0) < trigger.level:
                continue
            self._triggered.add(index)
            at = dt.datetime.fromisoformat(seen.at) + step.delay
            self.agenda.push(at, step, step.label, "response")

    def _trigger_on_inject(self, label: str) -> None:
        for index, step in enumerate(self.scenario.script):
            if step.on is None or step.on.inject != label or index in self._triggered:
                continue
            self._triggered.add(index)
            self.agenda.push(self.clock.now() + step.delay, step, step.label, "response")

    # -- ENDEX ------------------------------------------------------------------------

    async def _endex(self) -> DrillRun:
        assert self.run is not None
        await self._settle()
        now = self.clock.now()
        self._say("control", f"ENDEX ({self._endex_by})")
        scores = [
            score(item, self.observations, item.id in self._contingencies)
            for item in self.scenario.expected
        ]
        incidents = await self._incidents()
        # The exercise is over: its incidents are resolved, so nothing of it pages or
        # escalates again, and a live drill's PagerDuty incident is closed out too.
        for incident in incidents:
            if incident.status.is_open:
                try:
                    await self.pipeline.apply(
                        incident.number, StatusChange(Status.RESOLVED, self._control, "ENDEX")
                    )
                except TransitionError as err:
                    log.warning(
                        "drill %s: could not close #%s: %s", self.run.id, incident.number, err
                    )
        await self.dispatcher.drain()
        await self.store.cancel_drill_timers(self.run.id, self.clock.now())
        facts = RunFacts(self.start, self.shift, self.live, now, self._endex_by, self.cast.absences)
        numbers = [i.number for i in incidents]
        result = run_result(self.scenario, facts, self.log, self.observations, scores, numbers)
        if incidents:
            ended = dataclasses.replace(self.run, result=result)
            result["corrective_actions"] = await self._corrective_actions(ended, numbers[0])
        await self.store.save_drill_result(self.run.id, result, ended_at=self.wall.now())
        found = await self.store.get_drill_run(self.run.id)
        assert found is not None
        return found

    async def _corrective_actions(self, run: DrillRun, number: int) -> list[int]:
        """Each late or missed expected action becomes an action item on the drill's first
        incident, tracked to closure like a postmortem's (`orchestrator actions`)."""
        ids = []
        for title, owner in proposed_corrective_actions(run):
            item = NewActionItem(title, owner, None, ActionItemType.PROCESS)
            added = await self.store.add_action_item(number, item, self._control, self.clock.now())
            ids.append(added.id)
        return ids

    def refused(self, action: str, reason: str, enforced: bool) -> None:
        """Called by the safety guard for every action outside the safety block: refused in a
        live run; in a simulated one, delivered to the sandbox and noted."""
        if enforced:
            self._say("refused", f"{action} refused: {reason}", action)
        else:
            self._say("safety", f"a live run would refuse {action}: {reason}", action)

    def _offset(self) -> float:
        return (self.clock.now() - self.start - self.shift).total_seconds()

    def _say(self, kind: str, text: str, ref: str = "") -> None:
        self._line(self._offset(), self.clock.now().isoformat(), kind, text, ref)

    def _line(self, offset: float, at: str, kind: str, text: str, ref: str = "") -> None:
        line = LogLine(offset, at, kind, text, ref)
        self.log.append(line)
        self.on_log(line)


def _speed(clock: Clock) -> float:
    return float(getattr(clock, "speed", 1.0))
