"""OpenTelemetry set-up: the service's meter provider (served on /metrics for Prometheus, and
pushed over OTLP when configured), with the response histograms of incidents as they end; and
those histograms over a whole period, pushed once by `orchestrator metrics --otlp URL`. The
instruments themselves are in instruments.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import version

from opentelemetry import metrics
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExportResult,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry

from orchestrator.instruments import SCOPE
from orchestrator.report.histograms import DURATION_BUCKETS, PREFIX, record_histograms
from orchestrator.report.metrics import IncidentMetrics

SERVICE_NAME = "incident-orchestrator"


class ExportError(RuntimeError):
    pass


@dataclass
class ServiceTelemetry:
    """The service's metrics: one provider, read by Prometheus through `registry` (/metrics)
    and, with an OTLP URL, pushed every `interval` seconds; and its traces, exported over
    OTLP when a traces URL is set."""

    provider: MeterProvider
    registry: CollectorRegistry
    tracing: TracerProvider | None = None

    def meter(self) -> metrics.Meter:
        return self.provider.get_meter(SCOPE)

    def shutdown(self) -> None:
        self.provider.shutdown()
        if self.tracing is not None:
            self.tracing.shutdown()  # the last spans exported


def service_telemetry(
    otlp_url: str | None = None, interval: float = 60.0, traces_url: str | None = None
) -> ServiceTelemetry:
    registry = CollectorRegistry()
    readers: list[MetricReader] = [PrometheusMetricReader(registry=registry)]
    if otlp_url:
        readers.append(
            PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=otlp_url), export_interval_millis=interval * 1000
            )
        )
    provider = MeterProvider(metric_readers=readers, resource=_resource(), views=[_DURATIONS])
    tracing = None
    if traces_url:
        tracing = TracerProvider(resource=_resource())
        tracing.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
    return ServiceTelemetry(provider, registry, tracing)


# The response histograms' buckets: minutes to days, not the SDK's default milliseconds.
_DURATIONS = View(
    instrument_name=f"{PREFIX}*", aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS)
)


def _resource() -> Resource:
    return Resource.create({"service.name": SERVICE_NAME, "service.version": version(SERVICE_NAME)})


def push_histograms(
    endpoint: str,
    incidents: Iterable[IncidentMetrics],
    start: dt.datetime | None,
    end: dt.datetime | None,
    *,
    timeout: float = 10.0,
) -> int:
    """Records the incidents' durations as histograms and sends them to `endpoint` (an
    OTLP/HTTP metrics URL, e.g. http://collector:4318/v1/metrics) in one request; returns how
    many incidents were recorded. Raises ExportError when the collector does not take them."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        resource=_resource(),
        views=[_DURATIONS],
    )
    try:
        recorded = record_histograms(provider.get_meter(__name__), incidents, start, end)
        data = reader.get_metrics_data()
        exporter = OTLPMetricExporter(endpoint=endpoint, timeout=timeout)
        try:
            result = exporter.export(data) if data is not None else MetricExportResult.SUCCESS
        finally:
            exporter.shutdown()
    finally:
        provider.shutdown()
    if result is not MetricExportResult.SUCCESS:
        raise ExportError(f"the collector at {endpoint} did not accept the metrics (see the log)")
    return recorded
