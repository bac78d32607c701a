"""The pipeline: normalize, match, group, decide, then persist each decision in one transaction."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from orchestrator.clock import Clock
from orchestrator.incident.engine import Decision, TransitionError, decide, open_incident
from orchestrator.incident.events import AlertReceived, Event, TimerFired
from orchestrator.incident.grouping import Route, group_key, route
from orchestrator.incident.model import Actor
from orchestrator.incident.policy import PolicyDefaults
from orchestrator.ingest.alert import Alert, AlertStatus, SourceFormat
from orchestrator.ingest.normalize import Normalized, NormalizeError, normalize
from orchestrator.instruments import (
    SPAN_CHANGE,
    SPAN_DECIDE,
    SPAN_INGEST,
    SPAN_MATCH,
    SPAN_NORMALIZE,
    SPAN_STORE,
    SPAN_TIMER,
    Instruments,
    parent,
)
from orchestrator.intake_results import (
    IncidentNotFoundError,
    IngestReport,
    Outcome,
    Payload,
    alert_record,
)
from orchestrator.persist import Persist
from orchestrator.playbook.model import Playbook
from orchestrator.playbook.playbookset import PlaybookSet
from orchestrator.store.protocols import (
    AlertRecord,
    ConcurrentUpdateError,
    DeadLetter,
    Disposition,
    Store,
    SyncTransaction,
)
from orchestrator.timeline import EntryDraft, Kind
from orchestrator.timers import Timer, TimerKind

# What callers hand the pipeline and get back, defined apart so they can be imported without it.
__all__ = ["IncidentNotFoundError", "IngestReport", "Outcome", "Payload", "Pipeline"]

MAX_CONFLICT_RETRIES = 5


@dataclass
class _Batch:
    """What one batch's transaction knows about alerts: ids already recorded (looked up once
    for the whole batch) and the records it will insert together at the end."""

    seen: set[str]
    records: list[AlertRecord] = field(default_factory=list)


class Pipeline:
    def __init__(
        self,
        store: Store,
        playbooks: PlaybookSet,
        clock: Clock,
        *,
        drill_id: str | None = None,
        on_commit: Callable[[], None] | None = None,
        publish_events: bool = False,
        refresh_slack_summary: bool = False,
        policy_defaults: PolicyDefaults | None = None,
        instruments: Instruments | None = None,
    ) -> None:
        self.store = store
        self.playbooks = playbooks
        self.clock = clock
        # A drill run's pipeline: what it opens belongs to the drill, apart from real work.
        self.drill_id = drill_id
        # What a playbook without an escalation policy escalates with (SPEC §8).
        self.policy_defaults = policy_defaults or PolicyDefaults()
        self._persist = Persist(publish_events, refresh_slack_summary)
        self._on_commit = on_commit or (lambda: None)
        self.instruments = instruments or Instruments.of()

    async def ingest_bytes(
        self,
        raw: bytes,
        origin: str,
        *,
        format: SourceFormat | None = None,
        headers: dict[str, str] | None = None,
    ) -> IngestReport:
        """Never raises for bad input: it goes to the dead letters with its raw bytes."""
        payload = Payload(raw, origin, format, dict(headers or {}))
        (report,) = await self.ingest_many([payload])
        return report

    async def ingest_many(self, payloads: Sequence[Payload]) -> list[IngestReport]:
        """Records a batch of payloads in ONE transaction, in order, and returns a report each.

        One commit per batch is what makes a Kafka batch cheap, and what lets the consumer
        commit its offsets for the whole batch once the store has it. Bad payloads become dead
        letters in the same transaction; a conflict with another writer retries the batch.
        """
        tracer = self.instruments.tracer
        with tracer.start_as_current_span(SPAN_INGEST) as ingesting:
            now = self.clock.now()
            with tracer.start_as_current_span(SPAN_NORMALIZE) as normalizing:
                parsed = [self._normalized(payload, now) for payload in payloads]
                alert_ids = [
                    alert.id
                    for result in parsed
                    if not isinstance(result, NormalizeError)
                    for alert in result.alerts
                ]
                normalizing.set_attribute("alerts", len(alert_ids))
            ingesting.set_attributes({"payloads": len(payloads), "alerts": len(alert_ids)})

            def record(tx: SyncTransaction) -> list[IngestReport]:
                batch = _Batch(seen=tx.seen_alerts(alert_ids))
                reports = [
                    self._payload_in(tx, batch, payload, result, now)
                    for payload, result in zip(payloads, parsed, strict=True)
                ]
                tx.record_alerts(batch.records)
                return reports

            for attempt in range(1, MAX_CONFLICT_RETRIES + 1):
                try:
                    # A conflict ends its attempt's span with the error, and the batch retries.
                    with tracer.start_as_current_span(SPAN_STORE, attributes={"attempt": attempt}):
                        reports = await self.store.run(record)
                except ConcurrentUpdateError:
                    continue
                self._on_commit()
                self.instruments.count_intake(reports)
                return reports
        raise ConcurrentUpdateError("a batch kept conflicting with another writer, gave up")

    def _normalized(self, payload: Payload, now: dt.datetime) -> Normalized | NormalizeError:
        try:
            return self._own(normalize(payload.raw, received_at=now, format=payload.format))
        except NormalizeError as err:
            return err

    def _own(self, normalized: Normalized) -> Normalized:
        """A drill's alerts get ids of their own: a recorded real alert replayed in a drill is
        not a duplicate of the real one, and the alert population tells them apart."""
        if self.drill_id is None:
            return normalized
        alerts = [
            alert.model_copy(update={"id": f"drill:{self.drill_id}:{alert.id}"[:256]})
            for alert in normalized.alerts
        ]
        return dataclasses.replace(normalized, alerts=alerts)

    def _payload_in(
        self,
        tx: SyncTransaction,
        batch: _Batch,
        payload: Payload,
        result: Normalized | NormalizeError,
        now: dt.datetime,
    ) -> IngestReport:
        if isinstance(result, NormalizeError):
            letter = DeadLetter(payload.origin, str(result), payload.raw, now, payload.headers)
            letter_id = tx.record_dead_letter(letter)
            return IngestReport(
                payload.origin, payload.format, error=str(result), dead_letter_id=letter_id
            )
        outcomes = []
        for alert in result.alerts:
            outcomes.extend(self._alert_in(tx, batch, alert, now))
        return IngestReport(
            payload.origin, result.format, outcomes=outcomes, truncated=result.truncated
        )

    def _alert_in(
        self, tx: SyncTransaction, batch: _Batch, alert: Alert, now: dt.datetime
    ) -> list[Outcome]:
        if alert.id in batch.seen:
            return [Outcome(alert.id, Disposition.DUPLICATE)]
        batch.seen.add(alert.id)  # a resend later in the same batch is a duplicate too
        tracer = self.instruments.tracer
        with tracer.start_as_current_span(SPAN_MATCH, attributes={"alert": alert.id}) as span:
            matched = self.playbooks.match(alert.labels)
            span.set_attribute("playbooks", [playbook.name for playbook in matched])
        if not matched:
            batch.records.append(alert_record(alert, Disposition.UNMATCHED))
            return [Outcome(alert.id, Disposition.UNMATCHED)]
        outcomes = [self._route(tx, alert, playbook, now) for playbook in matched]
        # One row per alert: the first playbook's outcome is its disposition; later `continue`
        # matches are on their incidents' timelines.
        first = outcomes[0]
        batch.records.append(
            alert_record(alert, first.disposition, first.playbook, first.incident_number)
        )
        return outcomes

    def _route(
        self, tx: SyncTransaction, alert: Alert, playbook: Playbook, now: dt.datetime
    ) -> Outcome:
        # The incident keeps this span's trace: its deliveries and timers continue it.
        attributes = {"alert": alert.id, "playbook": playbook.name}
        with self.instruments.tracer.start_as_current_span(
            SPAN_DECIDE, attributes=attributes
        ) as span:
            outcome = self._decide(tx, alert, playbook, now)
            span.set_attribute("disposition", outcome.disposition.value)
            if outcome.incident_number is not None:
                span.set_attribute("incident", outcome.incident_number)
            return outcome

    def _decide(
        self, tx: SyncTransaction, alert: Alert, playbook: Playbook, now: dt.datetime
    ) -> Outcome:
        latest = tx.latest_incident_for_group(group_key(playbook, alert.labels, self.drill_id))
        where = route(latest, alert, playbook, now)
        if where is Route.ORPHAN:
            return Outcome(alert.id, Disposition.ORPHANED, playbook.name)
        if where is Route.OPEN:
            number = tx.allocate_incident_number()
            decision = open_incident(
                number,
                alert,
                playbook,
                now,
                drill_id=self.drill_id,
                defaults=self.policy_defaults,
            )
            self._persist(tx, decision, playbook, now, new=True)
            severity = decision.incident.severity.value
            return Outcome(
                alert.id, Disposition.OPENED, playbook.name, number, len(decision.actions), severity
            )
        assert latest is not None
        decision = decide(latest, AlertReceived(alert), playbook, now)
        self._persist(tx, decision, playbook, now, new=False)
        if where is Route.REOPEN:
            disposition = Disposition.REOPENED
        elif alert.status is AlertStatus.RESOLVED:
            disposition = Disposition.RESOLVED
        else:
            disposition = Disposition.GROUPED
        return Outcome(alert.id, disposition, playbook.name, latest.number, len(decision.actions))

    async def apply(self, number: int, event: Event) -> Decision:
        """Applies a command (ack, resolve, note, ...) to incident `number`.

        Raises IncidentNotFoundError, or TransitionError when the incident's state forbids it.
        """
        (decision,) = await self.apply_many([(number, event)])
        return decision

    async def apply_many(self, changes: Sequence[tuple[int, Event]]) -> list[Decision]:
        """Applies several commands in ONE transaction, in the order given (an incident may
        come up more than once): all of them or, if one raises, none."""
        now = self.clock.now()

        def change(tx: SyncTransaction) -> list[Decision]:
            # Locked in number order first, as every writer locks them (see fire_timers).
            tx.prepare_incidents([number for number, _ in changes])
            decisions = []
            for number, event in changes:
                incident = tx.get_incident_for_update(number)
                if incident is None:
                    raise IncidentNotFoundError(f"no incident #{number}")
                # A command (a Slack button, the CLI) joins the incident's trace.
                with self.instruments.tracer.start_as_current_span(
                    SPAN_CHANGE,
                    context=parent(incident.trace),
                    attributes={"incident": number, "event": type(event).__name__},
                ):
                    playbook = self.playbooks.get_or_bare(incident.playbook)
                    decision = decide(incident, event, playbook, now)
                    self._persist(tx, decision, playbook, now, new=False)
                decisions.append(decision)
            return decisions

        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                decisions = await self.store.run(change)
            except ConcurrentUpdateError:
                continue
            self._on_commit()
            return decisions
        raise ConcurrentUpdateError("a batch of changes kept conflicting, gave up")

    async def fire_timer(self, timer: Timer) -> Decision | None:
        """Turns a due timer into a TimerFired decision; marks it fired in the same transaction."""
        (decision,) = await self.fire_timers([timer])
        return decision

    async def fire_timers(self, timers: Sequence[Timer]) -> list[Decision | None]:
        """Fires several timers in ONE transaction, in the order given, each marked fired with
        its decision. None for a timer already fired or cancelled (another claimer won)."""
        now = self.clock.now()

        def fire(tx: SyncTransaction) -> list[Decision | None]:
            # Lock the incidents first, in number order, as every writer does: replicas firing
            # overlapping batches (and an ack cancelling timers) then queue instead of
            # deadlocking. The timers still fire in the order given.
            tx.prepare_incidents([timer.incident_number for timer in timers])
            # Firing a timer never cancels another, so all can be claimed as fired up front.
            won = tx.mark_timers_fired([timer.key for timer in timers], now)
            return [self._fire(tx, timer, now) if timer.key in won else None for timer in timers]

        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                decisions = await self.store.run(fire)
            except ConcurrentUpdateError:
                continue
            if any(decisions):
                self._on_commit()
            return decisions
        raise ConcurrentUpdateError("a batch of timers kept conflicting, gave up")

    def _fire(self, tx: SyncTransaction, timer: Timer, now: dt.datetime) -> Decision | None:
        incident = tx.get_incident_for_update(timer.incident_number)
        if incident is None:
            return None
        event = TimerFired(timer.key, timer.kind, timer.due_at, dict(timer.payload))
        with self.instruments.tracer.start_as_current_span(
            SPAN_TIMER,
            context=parent(timer.trace or incident.trace),
            attributes={"incident": incident.number, "timer": timer.kind},
        ):
            playbook = self.playbooks.get_or_bare(incident.playbook)
            decision = decide(incident, event, playbook, now)
            self._persist(tx, decision, playbook, now, new=False)
        return decision

    async def escalate(self, number: int, actor: Actor, reason: str = "") -> Decision:
        """Fires the incident's next escalation level now instead of when it is due: someone
        asked for more help. Raises TransitionError when no level is waiting."""
        now = self.clock.now()

        def escalate_now(tx: SyncTransaction) -> Decision:
            incident = tx.get_incident_for_update(number)
            if incident is None:
                raise IncidentNotFoundError(f"no incident #{number}")
            waiting = tx.pending_timers(number, TimerKind.ESCALATION.value)
            if not waiting:
                raise TransitionError(
                    f"incident #{number} has no escalation level waiting "
                    f"(it is {incident.status.value}, or its policy has run out)"
                )
            timer = waiting[0]
            tx.mark_timer_fired(timer.key, now)
            event = TimerFired(timer.key, timer.kind, timer.due_at, dict(timer.payload))
            playbook = self.playbooks.get_or_bare(incident.playbook)
            decision = decide(incident, event, playbook, now)
            asked = EntryDraft(
                Kind.ESCALATED,
                actor,
                now,
                {"timer": timer.key, "due_at": timer.due_at.isoformat(), "reason": reason},
            )
            decision = dataclasses.replace(decision, entries=(asked, *decision.entries))
            self._persist(tx, decision, playbook, now, new=False)
            return decision

        decision = await self.store.run(escalate_now)
        self._on_commit()
        return decision
