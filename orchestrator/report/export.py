"""A metrics report as JSON-ready data and as flat CSV rows (one per group and metric)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from orchestrator.report.aggregate import GroupReport, MetricsReport
from orchestrator.report.metrics import EXCLUSIONS, METRICS, IncidentMetrics, Metric, Stat

ALL = "(all)"  # the dimension value of the total's rows in CSV
PERCENTILES = "nearest rank"
STAT_COLUMNS = (
    "n",
    "p50_seconds",
    "p90_seconds",
    "max_seconds",
    "mean_seconds",
    "suppressed",
    "within_target",
    "met",
    "targeted",
    "target_seconds",
    "missing",
    "clamped",
    "skewed",
)
GROUP_COLUMNS = ("incidents", "counted", "open", "never_acknowledged", *EXCLUSIONS)


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def definitions(report: MetricsReport) -> dict[str, Any]:
    """What each metric means, printed beside the figures as the spec asks of MTTx labels."""
    return {
        metric.value: {
            "title": info.title,
            "formula": info.formula,
            "note": info.note,
            "headline": f"{info.headline} means the p50 (median) of {metric.value}; "
            "the mean is secondary",
            "target_seconds": {
                severity.value: seconds
                for severity, seconds in sorted(report.targets.get(metric, {}).items())
            },
        }
        for metric, info in METRICS.items()
    }


def stat_json(stat: Stat) -> dict[str, Any]:
    return dict(zip(STAT_COLUMNS, _stat_values(stat), strict=True))


def _stat_values(stat: Stat) -> tuple[Any, ...]:
    return (
        stat.n,
        stat.p50,
        stat.p90,
        stat.max,
        stat.mean,
        stat.suppressed,
        stat.within_target,
        stat.met,
        stat.targeted,
        stat.target,
        stat.missing,
        stat.clamped,
        stat.skewed,
    )


def group_json(found: GroupReport) -> dict[str, Any]:
    return {
        "key": found.key,
        "incidents": found.incidents,
        "counted": found.counted,
        "open": {
            "count": found.open,
            "age_p50_seconds": found.open_age_p50,
            "age_max_seconds": found.open_age_max,
        },
        "excluded": found.excluded,
        "never_acknowledged": found.never_acknowledged,
        "metrics": {metric.value: stat_json(stat) for metric, stat in found.stats.items()},
    }


def incident_json(incident: IncidentMetrics) -> dict[str, Any]:
    ts = incident.timestamps
    if ts is None:
        raise ValueError(
            f"incident #{incident.number}'s metrics were read without their timestamps"
        )
    return {
        "number": incident.number,
        "declared_at": _iso(incident.declared_at),
        "max_severity": incident.severity.value if incident.severity else None,
        "service": incident.service,
        "team": incident.team,
        "playbook": incident.playbook,
        "status": incident.status.value,
        "reopens": ts.reopens,
        "excluded": incident.excluded,
        "counted": incident.counted,
        "timestamps": {
            name: _iso(getattr(ts, name))
            for name in (
                "impact_started_at",
                "first_alert_at",
                "detected_at",
                "declared_at",
                "first_page_at",
                "first_ack_at",
                "mitigated_at",
                "resolved_at",
                "closed_at",
            )
        },
        "durations_seconds": {m.value: v for m, v in incident.durations.items()},
        "clamped": sorted(m.value for m in incident.clamped),
        "skewed": sorted(m.value for m in incident.skewed),
    }


def report_json(report: MetricsReport, incidents: Sequence[IncidentMetrics] = ()) -> dict[str, Any]:
    """Everything in seconds; shares as fractions; null where a figure is missing or withheld."""
    return {
        "from": _iso(report.start),
        "to": _iso(report.end),
        "as_of": _iso(report.as_of),
        "by": [d.value for d in report.by],
        "period": report.period.value if report.period else None,
        "min_n": report.min_n,
        "percentiles": PERCENTILES,
        "skew_tolerance_seconds": report.skew_tolerance,
        "definitions": definitions(report),
        "total": group_json(report.total),
        "groups": [group_json(g) for g in report.groups],
        "incidents": [incident_json(i) for i in incidents],
    }


def csv_header(report: MetricsReport) -> list[str]:
    return [*(d.value for d in report.by), "metric", *STAT_COLUMNS, *GROUP_COLUMNS]


def csv_rows(report: MetricsReport) -> list[list[Any]]:
    """One row per group and metric, the total's rows last with "(all)" in each dimension.
    Missing figures are empty cells, never 0."""
    rows: list[list[Any]] = []
    for found in (*report.groups, report.total):
        key = [found.key.get(d.value, ALL) for d in report.by]
        counts = [
            found.incidents,
            found.counted,
            found.open,
            found.never_acknowledged,
            *(found.excluded[reason] for reason in EXCLUSIONS),
        ]
        for metric in Metric:
            values = ["" if v is None else v for v in _stat_values(found.stats[metric])]
            rows.append([*key, metric.value, *values, *counts])
    return rows
