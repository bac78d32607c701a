"""Sending figures to an OpenTelemetry collector: the response metrics' histograms, pushed once
over OTLP/HTTP by `orchestrator metrics --otlp URL`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from importlib.metadata import version

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from orchestrator.report.histograms import DURATION_BUCKETS, PREFIX, record_histograms
from orchestrator.report.metrics import IncidentMetrics

SERVICE_NAME = "incident-orchestrator"


class ExportError(RuntimeError):
    pass


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
        resource=Resource.create(
            {"service.name": SERVICE_NAME, "service.version": version(SERVICE_NAME)}
        ),
        views=[
            View(
                instrument_name=f"{PREFIX}*",
                aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS),
            )
        ],
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
