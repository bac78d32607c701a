"""The long-running service: Kafka consumer and HTTP intake in, dispatcher and timers out, until
SIGTERM, then a graceful stop (finish in-flight work, commit, close)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
from collections.abc import Awaitable, Callable

from opentelemetry import metrics

from orchestrator.app import App
from orchestrator.evidence import take_checkpoint
from orchestrator.followups import REMINDER_ACTION, overdue_postmortems, reminder
from orchestrator.heap import settle_after_startup
from orchestrator.ingest.callbacks import callback_routes, slack_responder, slack_web_client
from orchestrator.ingest.http import IntakeSink, PipelineSink, create_intake_app, serve
from orchestrator.ingest.kafka import KafkaConfig, KafkaIntake, KafkaPublishSink
from orchestrator.ingest.slack import SlackResponder
from orchestrator.ingest.slack_socket import SlackSocketMode
from orchestrator.instruments import SCOPE
from orchestrator.reload import Reloader
from orchestrator.report.checkpoints import signing_key
from orchestrator.report.histograms import IncidentHistograms
from orchestrator.report.metrics import metrics_from_figures
from orchestrator.scheduler import EscalationAuditor, TimerService
from orchestrator.store.protocols import DeadLetter
from orchestrator.telemetry import ServiceTelemetry

log = logging.getLogger(__name__)


class Service:
    def __init__(self, app: App, telemetry: ServiceTelemetry | None = None) -> None:
        self.app = app
        self.telemetry = telemetry
        meter = telemetry.meter() if telemetry is not None else None
        self.instruments = app.pipeline.instruments
        self.histograms = IncidentHistograms(meter or metrics.get_meter(SCOPE))
        settings = app.settings
        self.kafka: KafkaIntake | None = None
        if settings.kafka_bootstrap:
            self.kafka = KafkaIntake(
                app.pipeline,
                KafkaConfig(
                    settings.kafka_bootstrap,
                    settings.kafka_topic_formats(),
                    group_id=settings.kafka_group,
                    dlq_suffix=settings.kafka_dlq_suffix,
                ),
            )
        self.timers = TimerService(
            app.store,
            app.pipeline,
            app.clock,
            meter=meter,
            lease=dt.timedelta(seconds=settings.timer_lease_seconds),
        )
        # Read now: a malformed key stops the service at start, not at the first checkpoint.
        self.checkpoint_key = (
            signing_key(settings.evidence_signing_key.get_secret_value())
            if settings.evidence_signing_key is not None
            else None
        )
        self.auditor = EscalationAuditor(
            app.store,
            app.clock,
            dt.timedelta(seconds=settings.timer_overdue_threshold_seconds),
            meter=meter,
        )
        self.started = False
        self.reloader = Reloader(app)  # SIGHUP and the folder watch
        # People answering back: Slack (HTTP callbacks or Socket Mode) and PagerDuty webhooks.
        self.slack_web = slack_web_client(settings)
        self.responder: SlackResponder | None = None
        if settings.slack_signing_secret is not None or settings.slack_app_token is not None:
            self.responder = slack_responder(settings, app.pipeline, app.store, self.slack_web)
        self.socket_mode: SlackSocketMode | None = None
        if settings.slack_app_token is not None and self.responder is not None:
            if settings.slack_bot_token is None:
                raise ValueError("ORCH_SLACK_APP_TOKEN (Socket Mode) needs ORCH_SLACK_BOT_TOKEN")
            self.socket_mode = SlackSocketMode(
                self.responder,
                app_token=settings.slack_app_token.get_secret_value(),
                bot_token=settings.slack_bot_token.get_secret_value(),
                base_url=settings.slack_api_url,
            )

    def sink(self) -> IntakeSink:
        """With Kafka, webhooks go onto the alerts topic (any replica consumes them); without,
        straight into this process's pipeline."""
        if self.kafka is not None:
            return KafkaPublishSink(
                self.kafka.broker, self.kafka.config.intake_topic, self.app.clock
            )

        async def deliver_now() -> None:
            self.app.dispatcher.wake()

        return PipelineSink(self.app.pipeline, on_accepted=deliver_now)

    async def record_dead_letter(self, letter: DeadLetter) -> int:
        """What the HTTP intake could not even decode (the pipeline counts its own)."""
        async with self.app.store.transaction() as tx:
            letter_id = await tx.record_dead_letter(letter)
        self.instruments.dead_letters.add(1, {"source": "unknown"})
        return letter_id

    async def readiness(self) -> dict[str, bool]:
        checks = {"started": self.started, "store": await self._store_answers()}
        if checks["store"]:
            checks["timers"] = await self._timers_on_time()
            checks["outbox"] = await self.measure_outbox()
        if self.kafka is not None:
            checks["kafka"] = self.started and await self.kafka.reachable()
        return checks

    async def _timers_on_time(self) -> bool:
        try:
            return (await self.auditor.check()).healthy
        except Exception:
            log.exception("escalation audit failed")
            return False

    async def audit_forever(self, stop: asyncio.Event, every: float = 30.0) -> None:
        """Audits on its own schedule too, so a stuck scheduler is logged even when nobody
        asks /readyz; and measures the outbox's backlog."""
        while not stop.is_set():
            await self._timers_on_time()
            await self.measure_outbox()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)

    async def measure_outbox(self) -> bool:
        """Records the outbox's backlog; False when an action has waited past the threshold
        (deliveries are stuck: a vendor outage, a dead dispatcher), which /readyz reports."""
        try:
            depth, oldest = await self.app.store.outbox_backlog()
        except Exception:
            log.exception("outbox backlog check failed")
            return False
        age = (self.app.clock.now() - oldest).total_seconds() if oldest is not None else 0.0
        self.instruments.outbox_depth.set(depth)
        self.instruments.outbox_oldest_age.set(max(0.0, age))
        threshold = self.app.settings.outbox_backlog_threshold_seconds
        if age > threshold:
            log.warning(
                "outbox: %d action(s) waiting, the oldest for %.0f s (over %.0f s): are the "
                "vendors reachable and the dispatcher running?",
                depth,
                age,
                threshold,
            )
            return False
        return True

    async def checkpoint_forever(self, stop: asyncio.Event) -> None:
        """Signs the chain heads every few minutes, so dropping the newest entries of any
        timeline is detectable (docs/evidence.md). Off without a signing key."""
        key = self.checkpoint_key
        assert key is not None
        await run_every(
            stop,
            self.app.settings.evidence_checkpoint_minutes * 60,
            lambda: take_checkpoint(self.app.store, key, self.app.clock),
            "signing a checkpoint",
        )

    async def remind_postmortems_forever(self, stop: asyncio.Event, every: float = 3600) -> None:
        """Posts, once a day per incident, a reminder in the channel of each incident whose
        required postmortem is overdue (docs/postmortems.md)."""
        days = self.app.settings.postmortem_due_business_days
        await run_every(
            stop, every, lambda: self.remind_postmortems(days), "looking for overdue postmortems"
        )

    async def fold_forever(self, stop: asyncio.Event) -> None:
        """Keeps each incident's timestamp fold current, so `orchestrator metrics` finds little
        left to read (docs/metrics.md), and records the incidents now over in the response
        histograms."""
        every = self.app.settings.fold_interval_seconds
        await run_every(stop, every, self.fold_and_observe, "folding new timeline entries")

    async def fold_and_observe(self) -> int:
        """One round: folds, then claims the incidents over since the last round (whichever
        replica claims one records it, so the replicas' histograms add up to each incident
        once) and records them; returns how many were recorded."""
        await self.app.store.refresh_folds()
        claimed = await self.app.store.claim_over()
        incidents = (
            metrics_from_figures(figures, team=team, is_drill=is_drill)
            for figures, team, is_drill in claimed
        )
        return sum(self.histograms.record(incident) for incident in incidents)

    async def remind_postmortems(self, days: int) -> int:
        now = self.app.clock.now()
        late = await overdue_postmortems(self.app.store, self.app.playbooks, now, days)
        reminders = [reminder(found, now.date()) for found in late]
        if reminders:
            async with self.app.store.transaction() as tx:
                reminders = await tx.enqueue_actions(reminders, now)
            self.app.dispatcher.wake()
        return len(reminders)

    async def _store_answers(self) -> bool:
        try:
            await self.app.store.list_incidents(limit=1)
        except Exception:  # readiness reports it; the logs say why
            log.exception("store check failed")
            return False
        return True

    async def run(self, stop: asyncio.Event, *, on_ready: Callable[[], None] | None = None) -> None:
        settings = self.app.settings
        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(self.app.dispatcher.run_forever(stop), name="dispatcher"),
            asyncio.create_task(self.timers.run_forever(stop), name="timers"),
            asyncio.create_task(self.audit_forever(stop), name="escalation-auditor"),
            asyncio.create_task(self.fold_forever(stop), name="timestamp-folds"),
        ]
        if self.checkpoint_key is not None:
            tasks.append(asyncio.create_task(self.checkpoint_forever(stop), name="checkpoints"))
        if settings.playbooks_watch_seconds > 0:
            watching = run_every(
                stop,
                settings.playbooks_watch_seconds,
                self.reloader.reload_if_changed,
                "watching the playbook folder",
            )
            tasks.append(asyncio.create_task(watching, name="playbook-watch"))
        if REMINDER_ACTION in self.app.handlers:
            tasks.append(
                asyncio.create_task(self.remind_postmortems_forever(stop), name="postmortems")
            )
        if settings.http_port:
            token = settings.http_token.get_secret_value() if settings.http_token else None
            intake = create_intake_app(
                self.sink(),
                dead_letters=self.record_dead_letter,
                clock=self.app.clock,
                token=token,
                readiness=self.readiness,
                extra_routes=callback_routes(
                    settings, self.app.pipeline, self.app.store, self.app.clock, self.responder
                ),
                metrics=self.telemetry.registry if self.telemetry is not None else None,
                tracer=self.instruments.tracer,
            )
            tasks.append(
                asyncio.create_task(
                    serve(intake, host=settings.http_host, port=settings.http_port, stop=stop),
                    name="http",
                )
            )
        if self.kafka is not None:
            await self.kafka.start()
        if self.socket_mode is not None:
            await self.socket_mode.start()
        self.started = True
        if on_ready is not None:
            on_ready()
        try:
            await _until_stop_or_failure(stop, tasks)
        finally:
            self.started = False
            stop.set()
            if self.kafka is not None:
                await self.kafka.stop()  # finishes the batch in flight and commits it
            if self.socket_mode is not None:
                await self.socket_mode.stop()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for task, result in zip(tasks, results, strict=True):
                if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError
                ):
                    log.error("%s stopped with %r", task.get_name(), result)


async def run_every(
    stop: asyncio.Event, seconds: float, work: Callable[[], Awaitable[object]], what: str
) -> None:
    """Runs `work` now and then every `seconds` until asked to stop. A failed round is logged
    and the next one tries again: these chores must not take the service down."""
    while not stop.is_set():
        try:
            await work()
        except Exception:
            log.exception("%s failed", what)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _until_stop_or_failure(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Returns when asked to stop, or raises when a component dies: a service that lost its
    dispatcher or intake must not keep looking healthy."""
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    for task in done:
        if task is not stopper and task.exception() is not None:
            raise RuntimeError(f"{task.get_name()} failed") from task.exception()


def install_signal_handlers(stop: asyncio.Event, reload: Callable[[], None] | None = None) -> None:
    """SIGTERM and SIGINT stop the service gracefully; SIGHUP reloads its playbooks."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    if reload is not None:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, reload)


async def run_service(
    app: App,
    *,
    on_ready: Callable[[], None] | None = None,
    telemetry: ServiceTelemetry | None = None,
) -> None:
    stop = asyncio.Event()
    service = Service(app, telemetry)
    install_signal_handlers(stop, service.reloader.in_background)
    settle_after_startup()
    await service.run(stop, on_ready=on_ready)
