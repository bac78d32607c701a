"""The service's own metrics and traces, as OpenTelemetry instruments: what came in and what
became of it, what went out, how far behind the outbox is, and the spans of an alert's journey.
Every name is here. Components take an Instruments; by default they record through the global
meter and tracer, which do nothing until the process installs providers (telemetry.py)."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from orchestrator.intake_results import IngestReport
from orchestrator.store.protocols import Disposition

SCOPE = "orchestrator"


@dataclass(frozen=True)
class Instruments:
    alerts: metrics.Counter  # by source and disposition
    dead_letters: metrics.Counter  # by intake (kafka, http, cli, …)
    incidents_opened: metrics.Counter  # by severity and playbook
    deliveries: metrics.Counter  # by handler, action and outcome (delivered, retrying, failed)
    outbox_depth: metrics._Gauge  # the API exports the synchronous gauge under this name
    outbox_oldest_age: metrics._Gauge
    consumer_lag: metrics._Gauge  # by topic and partition
    tracer: trace.Tracer

    @classmethod
    def of(
        cls, meter: metrics.Meter | None = None, tracer: trace.Tracer | None = None
    ) -> Instruments:
        meter = meter or metrics.get_meter(SCOPE)
        return cls(
            tracer=tracer or trace.get_tracer(SCOPE),
            alerts=meter.create_counter(
                "orchestrator.alerts", unit="{alert}", description="Alerts in, by disposition"
            ),
            dead_letters=meter.create_counter(
                "orchestrator.dead_letters",
                unit="{payload}",
                description="Payloads that could not be read, kept with their raw bytes",
            ),
            incidents_opened=meter.create_counter(
                "orchestrator.incidents.opened", unit="{incident}", description="Incidents opened"
            ),
            deliveries=meter.create_counter(
                "orchestrator.actions.deliveries",
                unit="{attempt}",
                description="Action delivery attempts, by handler, action and outcome",
            ),
            outbox_depth=meter.create_gauge(
                "orchestrator.outbox.depth",
                unit="{action}",
                description="Actions waiting in the outbox (drills not counted)",
            ),
            consumer_lag=meter.create_gauge(
                "orchestrator.kafka.consumer_lag",
                unit="{message}",
                description="Alert messages waiting on a partition after the last batch read",
            ),
            outbox_oldest_age=meter.create_gauge(
                "orchestrator.outbox.oldest_age",
                unit="s",
                description="How long the oldest waiting action has waited (0 when none)",
            ),
        )

    def count_intake(self, reports: list[IngestReport]) -> None:
        """A committed batch's alerts, dead letters and new incidents."""
        for report in reports:
            source = report.format.value if report.format is not None else "unknown"
            if report.error is not None:
                self.dead_letters.add(1, {"source": source})
            for outcome in report.outcomes:
                self.alerts.add(1, {"source": source, "disposition": outcome.disposition.value})
                if outcome.disposition is Disposition.OPENED:
                    attributes = {
                        "severity": outcome.severity or "",
                        "playbook": outcome.playbook or "",
                    }
                    self.incidents_opened.add(1, attributes)


# Span names, one per step of an alert's journey.
SPAN_INGEST = "orchestrator.ingest"  # a batch of payloads recorded in one transaction
SPAN_NORMALIZE = "orchestrator.normalize"  # the batch's payloads read into alerts
SPAN_STORE = "orchestrator.store.transaction"  # one attempt at the batch's transaction
SPAN_MATCH = "orchestrator.match"  # one alert matched against the playbooks
SPAN_DECIDE = "orchestrator.decide"  # what one matched playbook decides, and its persisting
SPAN_CHANGE = "orchestrator.change"  # a command (ack, note, Slack button …) on an incident
SPAN_TIMER = "orchestrator.timer"  # a timer firing (escalation, ack timeout, reminder)
SPAN_DELIVER = "orchestrator.deliver"  # one delivery attempt of an action

_PROPAGATOR = TraceContextTextMapPropagator()


def traceparent() -> str | None:
    """The current span as a W3C traceparent, to store beside what it decided."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def parent(stored: str | None) -> Context | None:
    """The context a stored traceparent names, for a span that continues its trace."""
    if not stored:
        return None
    return _PROPAGATOR.extract({"traceparent": stored})
