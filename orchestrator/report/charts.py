"""Trend charts of a metrics report: median TTA and TTR per period, one line per severity."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib as mpl
from matplotlib.figure import Figure

from orchestrator.report.aggregate import Dimension, MetricsReport
from orchestrator.report.metrics import METRICS, Metric

FORMATS = ("png", "svg")
TREND_METRICS = (Metric.TTA, Metric.TTR)
# Fixed per severity, so a severity has the same colour in every panel and every chart.
SEVERITY_COLORS = {
    "SEV1": "tab:red",
    "SEV2": "tab:orange",
    "SEV3": "tab:olive",
    "SEV4": "tab:blue",
    "SEV5": "tab:gray",
}


def trend_series(
    report: MetricsReport, metric: Metric
) -> tuple[list[str], dict[str, list[float | None]]]:
    """The periods in order and, per severity, the p50 in minutes for each period; None where
    there were no incidents or too few to show a percentile."""
    if Dimension.PERIOD not in report.by or Dimension.SEVERITY not in report.by:
        raise ValueError("a trend needs a report grouped by period and severity")
    periods = sorted({g.key[Dimension.PERIOD] for g in report.groups})
    series: dict[str, list[float | None]] = {}
    for found in report.groups:
        severity = found.key[Dimension.SEVERITY]
        line = series.setdefault(severity, [None] * len(periods))
        p50 = found.stats[metric].p50
        line[periods.index(found.key[Dimension.PERIOD])] = None if p50 is None else p50 / 60
    return periods, dict(sorted(series.items()))


def render_trend(
    report: MetricsReport, fmt: str, metrics: Sequence[Metric] = TREND_METRICS
) -> bytes:
    """The chart as PNG or SVG bytes; the caller decides where they go."""
    if fmt not in FORMATS:
        raise ValueError(f"charts are {' or '.join(FORMATS)}, not {fmt!r}")
    # The object API, not pyplot: no global figure state and no GUI backend to pick.
    figure = Figure(figsize=(9, 3.6 * len(metrics)), layout="constrained")
    axes = figure.subplots(len(metrics), 1, squeeze=False, sharex=True)
    for row, metric in enumerate(metrics):
        ax = axes[row][0]
        periods, series = trend_series(report, metric)
        plotted = False
        for severity, values in series.items():
            if all(v is None for v in values):
                continue
            # NaN leaves a gap where a period has no figure, rather than a misleading line to 0.
            ys = [math.nan if v is None else v for v in values]
            color = SEVERITY_COLORS.get(severity, "black")
            ax.plot(periods, ys, marker="o", label=severity, color=color)
            plotted = True
        info = METRICS[metric]
        ax.set_title(f"p50 {metric.value.upper()}: {info.title} ({info.formula})", fontsize=10)
        ax.set_ylabel("minutes")
        ax.set_ylim(bottom=0)  # a trend read off a cropped axis exaggerates every change
        ax.grid(visible=True, alpha=0.3)
        if plotted:
            ax.legend(title="max severity", fontsize=8)
        else:
            ax.text(
                0.5,
                0.5,
                f"fewer than {report.min_n} incidents in every period",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        if not periods:
            ax.set_xticks([])
    axes[-1][0].set_xlabel(f"{report.period or 'month'} declared (UTC)")
    out = io.BytesIO()
    # No creation date and a fixed id salt: the same report gives the same bytes.
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with mpl.rc_context({"svg.hashsalt": "incident-metrics"}):
        figure.savefig(out, format=fmt, metadata=metadata)
    return out.getvalue()
