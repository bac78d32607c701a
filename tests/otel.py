"""Reading OpenTelemetry instruments in tests: a real SDK meter with an in-memory reader."""

from __future__ import annotations

from typing import Any

from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader


class Metrics:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meter: Meter = MeterProvider(metric_readers=[self.reader]).get_meter("tests")

    def points(self, name: str) -> list[Any]:
        """The data points of instrument `name` collected now ([] if it recorded nothing)."""
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def value(self, name: str) -> Any:
        (point,) = self.points(name)
        return point.value
