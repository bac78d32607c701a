"""The response metrics as OpenTelemetry histograms: one per metric (TTD, TTA, TTM, TTR, time
to restore), one observation per counted incident, with its severity, service, team and
playbook as attributes, so a dashboard can slice them the way `orchestrator metrics` does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from opentelemetry.metrics import Meter

from orchestrator.report.aggregate import in_range
from orchestrator.report.metrics import METRICS, IncidentMetrics, Metric

# Seconds: a minute to three days, denser where targets sit (SPEC §8).
DURATION_BUCKETS = (
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    86400.0,
    259200.0,
)
PREFIX = "orchestrator.incident."


def instrument_name(metric: Metric) -> str:
    return f"{PREFIX}{metric.value}"


class IncidentHistograms:
    """The five histograms on one meter; `record` adds one incident's durations if it counts."""

    def __init__(self, meter: Meter) -> None:
        self._histograms = {
            metric: meter.create_histogram(
                instrument_name(metric), unit="s", description=f"{info.title}: {info.formula}"
            )
            for metric, info in METRICS.items()
        }

    def record(self, incident: IncidentMetrics) -> bool:
        """Records a counted incident's durations; False (and nothing) for one not counted."""
        if not incident.counted:
            return False
        attributes = {
            "severity": incident.severity.value if incident.severity else "",
            "service": incident.service,
            "team": incident.team,
            "playbook": incident.playbook,
        }
        for metric, seconds in incident.durations.items():
            if seconds is not None:
                self._histograms[metric].record(seconds, attributes)
        return True


def record_histograms(
    meter: Meter,
    incidents: Iterable[IncidentMetrics],
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> int:
    """Records every counted incident declared in [start, end); returns how many."""
    histograms = IncidentHistograms(meter)
    return sum(histograms.record(incident) for incident in in_range(incidents, start, end))
