"""Response metrics per incident (SPEC §4) and the statistics reported for a set of them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from operator import attrgetter
from typing import Any

from orchestrator.incident.model import Severity, Status
from orchestrator.report.timestamps import CanonicalTimestamps, frozen

DEFAULT_MIN_N = 10
# A negative duration this small is clock skew between a source and us around a true value
# of about zero: it counts as 0. A larger one means a wrong clock, and the value is left out.
DEFAULT_SKEW_TOLERANCE = 60.0


class Metric(StrEnum):
    TTD = "ttd"
    TTA = "tta"
    TTM = "ttm"
    TTR = "ttr"
    RESTORE = "restore"


@dataclass(frozen=True)
class MetricInfo:
    title: str
    start: str  # the CanonicalTimestamps field the duration starts at
    end: str  # ... and the one it ends at
    verb: str  # for "SEV1 acknowledged within 5m"
    headline: str  # the figure the UI's "MTTx" shorthand names
    note: str = ""

    @property
    def formula(self) -> str:
        return f"{self.end} - {self.start}"


METRICS: dict[Metric, MetricInfo] = {
    Metric.TTD: MetricInfo(
        "time to detect", "impact_started_at", "detected_at", "detected", "MTTD"
    ),
    Metric.TTA: MetricInfo(
        "time to acknowledge",
        "declared_at",
        "first_ack_at",
        "acknowledged",
        "MTTA",
        "PagerDuty's definition",
    ),
    Metric.TTM: MetricInfo(
        "time to mitigate", "impact_started_at", "mitigated_at", "mitigated", "MTTM"
    ),
    Metric.TTR: MetricInfo(
        "time to resolve",
        "declared_at",
        "resolved_at",
        "resolved",
        "MTTR",
        "PagerDuty's definition",
    ),
    Metric.RESTORE: MetricInfo(
        "time to restore",
        "impact_started_at",
        "resolved_at",
        "restored",
        "time to restore",
        "user-impact duration",
    ),
}

# Seconds each severity should take at most. TTA follows the escalation defaults (SPEC §8:
# SEV1 5 min, SEV2 15 min, SEV3 30 min; SEV4 and SEV5 are not paged, so they have no ack target).
Targets = Mapping[Metric, Mapping[Severity, float]]
_MIN, _HOUR, _DAY = 60.0, 3600.0, 86400.0
DEFAULT_TARGETS: Targets = {
    Metric.TTD: {Severity.SEV1: 5 * _MIN, Severity.SEV2: 10 * _MIN, Severity.SEV3: 30 * _MIN},
    Metric.TTA: {Severity.SEV1: 5 * _MIN, Severity.SEV2: 15 * _MIN, Severity.SEV3: 30 * _MIN},
    Metric.TTM: {Severity.SEV1: 1 * _HOUR, Severity.SEV2: 4 * _HOUR, Severity.SEV3: 1 * _DAY},
    Metric.TTR: {Severity.SEV1: 4 * _HOUR, Severity.SEV2: 1 * _DAY, Severity.SEV3: 3 * _DAY},
    Metric.RESTORE: {Severity.SEV1: 4 * _HOUR, Severity.SEV2: 1 * _DAY, Severity.SEV3: 3 * _DAY},
}

# Left out of operational metrics, and why (drills have their own after-action reports).
EXCLUDED_STATUSES = (Status.DECLINED, Status.MERGED, Status.CANCELED)
EXCLUSIONS = ("drill", *(status.value for status in EXCLUDED_STATUSES))


@dataclass(frozen=True)
class IncidentMetrics:
    """One incident's durations in seconds; None when a timestamp is missing or skewed."""

    number: int
    declared_at: dt.datetime
    severity: Severity | None  # the highest reached
    service: str
    team: str
    playbook: str
    status: Status
    excluded: str | None  # "drill", "declined", "merged" or "canceled"; None when counted
    durations: dict[Metric, float | None]
    clamped: frozenset[Metric]  # small negative values counted as 0
    skewed: frozenset[Metric]  # negative values beyond the tolerance, left out
    acknowledged: bool  # explicitly, at least once
    # What they were computed from; None when read from stored figures (metrics_from_figures).
    timestamps: CanonicalTimestamps | None

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    @property
    def counted(self) -> bool:
        """In the durations: operational and over (open incidents are counts and ages)."""
        return self.excluded is None and not self.is_open


# Each metric's (start, end) timestamps, looked up once rather than by name per incident.
_SPANS = tuple(
    (metric, attrgetter(info.start), attrgetter(info.end)) for metric, info in METRICS.items()
)
_NONE: frozenset[Metric] = frozenset()
_FIGURES = 8 + len(_SPANS)
STATUS_FIGURE = 5  # where figures_json puts the incident's status
# Enum lookups by value, as plain dicts: calling the Enum class was a tenth of reading figures.
_STATUSES = {status.value: status for status in Status}
_SEVERITIES = {severity.value: severity for severity in Severity}


def incident_metrics(
    timestamps: CanonicalTimestamps,
    *,
    team: str = "",
    is_drill: bool = False,
    skew_tolerance: float = DEFAULT_SKEW_TOLERANCE,
) -> IncidentMetrics:
    """The incident's durations. `team` and `is_drill` come from the incident, where they are
    set once when it opens; the timeline does not carry them."""
    return _measured(
        figures_json(timestamps), team, is_drill, skew_tolerance, timestamps=timestamps
    )


def figures_json(timestamps: CanonicalTimestamps) -> list[Any]:
    """What the metrics need of an incident's timestamps, as a compact JSON array the store
    keeps beside its fold: number, declared_at, highest severity, service, playbook, status,
    drill, acknowledged, then each metric's raw duration in seconds (negative when the clocks
    disagree; null when a timestamp is missing). Clock-skew tolerance is applied on reading,
    so it stays a reader's choice."""
    raw: list[float | None] = []
    for _, start_of, end_of in _SPANS:
        start: dt.datetime | None = start_of(timestamps)
        end: dt.datetime | None = end_of(timestamps)
        raw.append(None if start is None or end is None else (end - start).total_seconds())
    severity = timestamps.max_severity
    return [
        timestamps.number,
        timestamps.declared_at.isoformat(),
        severity.value if severity is not None else None,
        timestamps.service,
        timestamps.playbook,
        timestamps.status.value,
        timestamps.is_drill,
        timestamps.first_ack_at is not None,
        *raw,
    ]


def metrics_from_figures(
    figures: Sequence[Any],
    *,
    team: str = "",
    is_drill: bool = False,
    skew_tolerance: float = DEFAULT_SKEW_TOLERANCE,
) -> IncidentMetrics:
    """incident_metrics from stored figures (figures_json): the same durations, without the
    timestamps, for reports that need only the durations."""
    return _measured(figures, team, is_drill, skew_tolerance, timestamps=None)


def _measured(
    figures: Sequence[Any],
    team: str,
    is_drill: bool,
    skew_tolerance: float,
    *,
    timestamps: CanonicalTimestamps | None,
) -> IncidentMetrics:
    if len(figures) != _FIGURES:
        raise ValueError(f"stored figures have {len(figures)} fields, not {_FIGURES}")
    number, declared, severity, service, playbook, status, drill, acked = figures[:8]
    durations: dict[Metric, float | None] = {}
    clamped: set[Metric] | None = None
    skewed: set[Metric] | None = None
    for (metric, _, _), seconds in zip(_SPANS, figures[8:], strict=True):
        if seconds is None or seconds >= 0:
            durations[metric] = seconds
        elif -seconds <= skew_tolerance:
            durations[metric] = 0.0
            clamped = (clamped or set()) | {metric}
        else:
            durations[metric] = None
            skewed = (skewed or set()) | {metric}
    state = _STATUSES[status]
    excluded: str | None = None
    if is_drill or drill:
        excluded = "drill"
    elif state in EXCLUDED_STATUSES:
        excluded = state.value
    return frozen(
        IncidentMetrics,
        {
            "number": number,
            "declared_at": dt.datetime.fromisoformat(declared),
            "severity": _SEVERITIES[severity] if severity is not None else None,
            "service": service,
            "team": team,
            "playbook": playbook,
            "status": state,
            "excluded": excluded,
            "durations": durations,
            # Nearly every incident has neither: one shared empty set instead of two new ones.
            "clamped": frozenset(clamped) if clamped else _NONE,
            "skewed": frozenset(skewed) if skewed else _NONE,
            "acknowledged": acked,
            "timestamps": timestamps,
        },
    )


@dataclass(frozen=True)
class Stat:
    """One metric over a set of incidents. Seconds; shares are fractions (0.87 = 87%)."""

    n: int
    p50: float | None
    p90: float | None
    max: float | None
    mean: float | None  # secondary: incident durations are heavily skewed
    suppressed: bool  # n below the minimum: p50, p90 and mean are withheld
    within_target: float | None  # met / targeted
    met: int
    targeted: int  # values whose severity has a target
    target: float | None  # the target, when every targeted value shares one
    missing: int  # counted incidents without the timestamps (e.g. never acknowledged)
    clamped: int
    skewed: int


def percentile(ordered: Sequence[float], p: int) -> float:
    """Nearest rank: the smallest observed value with at least p% of values at or below it.
    Integer arithmetic, so 90% of 70 is rank 63 exactly, not 63.000000000000001."""
    if not ordered:
        raise ValueError("percentile of no values")
    rank = max(1, -(-p * len(ordered) // 100))
    return ordered[rank - 1]


class MetricTally:
    """One metric's figures, gathered one counted incident at a time: the aggregate's groups
    and total, in one pass over the incidents."""

    __slots__ = ("clamped", "goals", "met", "metric", "missing", "skewed", "targets", "values")

    def __init__(self, metric: Metric, targets: Targets = DEFAULT_TARGETS) -> None:
        self.metric = metric
        self.targets = targets.get(metric, {})
        self.values: list[float] = []
        self.goals: list[float] = []
        self.met = self.missing = self.clamped = self.skewed = 0

    def add(self, incident: IncidentMetrics) -> None:
        """Counts a counted incident (the caller checks `counted`)."""
        metric = self.metric
        if metric in incident.clamped:
            self.clamped += 1
        if metric in incident.skewed:
            self.skewed += 1
            return
        self.add_value(incident.durations[metric], incident.severity)

    def add_value(self, value: float | None, severity: Severity | None) -> None:
        """One counted incident's duration (None: its timestamps are missing)."""
        if value is None:
            self.missing += 1
            return
        self.values.append(value)
        goal = self.targets.get(severity) if severity else None
        if goal is not None:
            self.goals.append(goal)
            if value <= goal:
                self.met += 1

    def merge(self, other: MetricTally) -> None:
        self.values += other.values
        self.goals += other.goals
        self.met += other.met
        self.missing += other.missing
        self.clamped += other.clamped
        self.skewed += other.skewed

    def stat(self, min_n: int = DEFAULT_MIN_N) -> Stat:
        values = sorted(self.values)
        goals = self.goals
        n = len(values)
        shown = n >= min_n and n > 0
        return Stat(
            n=n,
            p50=percentile(values, 50) if shown else None,
            p90=percentile(values, 90) if shown else None,
            max=values[-1] if values else None,
            mean=sum(values) / n if shown else None,
            suppressed=0 < n < min_n,
            within_target=self.met / len(goals) if goals else None,
            met=self.met,
            targeted=len(goals),
            target=goals[0] if goals and len(set(goals)) == 1 else None,
            missing=self.missing,
            clamped=self.clamped,
            skewed=self.skewed,
        )
