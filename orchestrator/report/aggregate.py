"""Groups incident metrics by severity, service, team, playbook and period into one report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.report.metrics import (
    DEFAULT_MIN_N,
    DEFAULT_SKEW_TOLERANCE,
    DEFAULT_TARGETS,
    EXCLUSIONS,
    IncidentMetrics,
    Metric,
    MetricTally,
    Stat,
    Targets,
    percentile,
)

NONE = "(none)"  # the group of incidents without a service, team, ...


class Dimension(StrEnum):
    SEVERITY = "severity"
    SERVICE = "service"
    TEAM = "team"
    PLAYBOOK = "playbook"
    PERIOD = "period"


class Period(StrEnum):
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"


def period_of(when: dt.datetime, period: Period) -> str:
    """The UTC calendar period `when` falls in: "2026-W14" (ISO week), "2026-04", "2026-Q2"."""
    utc = when.astimezone(dt.UTC)
    if period is Period.WEEK:
        year, week, _ = utc.isocalendar()
        return f"{year}-W{week:02d}"
    if period is Period.MONTH:
        return f"{utc.year}-{utc.month:02d}"
    return f"{utc.year}-Q{(utc.month - 1) // 3 + 1}"


@dataclass(frozen=True)
class GroupReport:
    """The figures for one group of incidents (or for all of them)."""

    key: dict[str, str]  # dimension → value; empty for the total
    incidents: int  # every incident declared in the range
    counted: int  # in the durations: not excluded, not open
    open: int
    open_age_p50: float | None  # seconds since declared_at at the report's as_of
    open_age_max: float | None
    excluded: dict[str, int]  # drill / declined / merged / canceled → count
    never_acknowledged: int  # counted incidents without an acknowledgement: out of TTA
    stats: dict[Metric, Stat]


@dataclass(frozen=True)
class MetricsReport:
    by: tuple[Dimension, ...]
    period: Period | None
    start: dt.datetime | None  # declared_at at or after
    end: dt.datetime | None  # declared_at before
    as_of: dt.datetime  # what open incidents' ages are measured to
    min_n: int
    skew_tolerance: float
    targets: Targets
    total: GroupReport
    groups: tuple[GroupReport, ...]


def in_range(
    incidents: Iterable[IncidentMetrics], start: dt.datetime | None, end: dt.datetime | None
) -> list[IncidentMetrics]:
    """The incidents declared in [start, end): an incident counts in the period it was declared."""
    return [
        i
        for i in incidents
        if (start is None or i.declared_at >= start) and (end is None or i.declared_at < end)
    ]


def _value(incident: IncidentMetrics, dimension: Dimension, period: Period) -> str:
    if dimension is Dimension.SEVERITY:
        return incident.severity.value if incident.severity is not None else NONE
    if dimension is Dimension.SERVICE:
        return incident.service or NONE
    if dimension is Dimension.TEAM:
        return incident.team or NONE
    if dimension is Dimension.PLAYBOOK:
        return incident.playbook or NONE
    return period_of(incident.declared_at, period)


class _GroupTally:
    """A group's figures gathered in one pass over its incidents; the total is the merge of
    the groups' tallies, so a report reads each incident once whatever it is grouped by."""

    def __init__(self, targets: Targets) -> None:
        self.incidents = 0
        self.counted = 0
        self.never_acknowledged = 0
        self.open_since: list[dt.datetime] = []
        self.excluded = dict.fromkeys(EXCLUSIONS, 0)
        self.metrics = {metric: MetricTally(metric, targets) for metric in Metric}

    def add(self, incident: IncidentMetrics) -> None:
        self.incidents += 1
        if incident.excluded is not None:
            self.excluded[incident.excluded] += 1
        elif incident.is_open:
            self.open_since.append(incident.declared_at)
        else:
            self.counted += 1
            if not incident.acknowledged:
                self.never_acknowledged += 1
            if incident.clamped or incident.skewed:
                for tally in self.metrics.values():
                    tally.add(incident)
            else:  # the usual case: no clock-skew bookkeeping to do
                severity = incident.severity
                for metric, value in incident.durations.items():
                    self.metrics[metric].add_value(value, severity)

    def merge(self, other: _GroupTally) -> None:
        self.incidents += other.incidents
        self.counted += other.counted
        self.never_acknowledged += other.never_acknowledged
        self.open_since += other.open_since
        for reason, count in other.excluded.items():
            self.excluded[reason] += count
        for metric, tally in self.metrics.items():
            tally.merge(other.metrics[metric])

    def report(self, key: dict[str, str], as_of: dt.datetime, min_n: int) -> GroupReport:
        ages = sorted(max(0.0, (as_of - since).total_seconds()) for since in self.open_since)
        return GroupReport(
            key=dict(key),
            incidents=self.incidents,
            counted=self.counted,
            open=len(ages),
            open_age_p50=percentile(ages, 50) if ages and len(ages) >= min_n else None,
            open_age_max=ages[-1] if ages else None,
            excluded=dict(self.excluded),
            never_acknowledged=self.never_acknowledged,
            stats={metric: tally.stat(min_n) for metric, tally in self.metrics.items()},
        )


def aggregate(
    incidents: Iterable[IncidentMetrics],
    *,
    as_of: dt.datetime,
    by: Sequence[Dimension] = (Dimension.SEVERITY,),
    period: Period | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    min_n: int = DEFAULT_MIN_N,
    skew_tolerance: float = DEFAULT_SKEW_TOLERANCE,
    targets: Targets = DEFAULT_TARGETS,
) -> MetricsReport:
    """The report: a total and one group per combination of `by` values that occurs, in order.

    `skew_tolerance` is recorded for the reader; it was applied when the metrics were computed.
    """
    chosen = in_range(incidents, start, end)
    dimensions = tuple(dict.fromkeys(by))
    if Dimension.PERIOD in dimensions and period is None:
        period = Period.MONTH
    slot = period or Period.MONTH
    buckets: dict[tuple[str, ...], _GroupTally] = {}
    for incident in chosen:
        values = tuple(_value(incident, d, slot) for d in dimensions)
        bucket = buckets.get(values)
        if bucket is None:
            bucket = buckets[values] = _GroupTally(targets)
        bucket.add(incident)
    total = _GroupTally(targets)
    for bucket in buckets.values():
        total.merge(bucket)
    names = [d.value for d in dimensions]
    groups = tuple(
        buckets[values].report(dict(zip(names, values, strict=True)), as_of, min_n)
        for values in sorted(buckets)
    )
    return MetricsReport(
        by=dimensions,
        period=period,
        start=start,
        end=end,
        as_of=as_of,
        min_n=min_n,
        skew_tolerance=skew_tolerance,
        targets=targets,
        total=total.report({}, as_of, min_n),
        groups=groups,
    )
