"""`orchestrator metrics`: TTD, TTA, TTM, TTR and time to restore, computed from timelines."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import console, errors, fail, opened_store, print_json, run, when
from orchestrator.heap import collector_paused
from orchestrator.incident.model import Severity
from orchestrator.playbook.durations import DurationError, format_duration, parse_duration
from orchestrator.report.aggregate import (
    Dimension,
    GroupReport,
    MetricsReport,
    Period,
    aggregate,
    in_range,
)
from orchestrator.report.export import ALL, csv_header, csv_rows, report_json
from orchestrator.report.metrics import (
    DEFAULT_MIN_N,
    DEFAULT_SKEW_TOLERANCE,
    DEFAULT_TARGETS,
    EXCLUSIONS,
    METRICS,
    IncidentMetrics,
    Metric,
    Stat,
    Targets,
    incident_metrics,
    metrics_from_figures,
)
from orchestrator.store.sql import SqlStore

# The stored declared_at only narrows which folds to read; the period's bounds are applied
# again to the metrics (aggregate, in_range), so a margin here changes nothing but the reading.
DECLARED_MARGIN = dt.timedelta(days=1)
REREAD_AT_MOST = 1000  # incidents whose figures are read again by number after folding
PROGRESS_FROM = 500  # fewer timelines fold too fast for a progress bar to help
MISSING = {Metric.TTA: "never acknowledged", Metric.TTM: "no mitigation recorded"}


def _when(text: str, *, option: str, end: bool = False) -> dt.datetime:
    """A date (the whole UTC day; `--to` includes it) or an ISO 8601 time (UTC if naive)."""
    try:
        if "T" not in text and " " not in text:
            day = dt.date.fromisoformat(text) + dt.timedelta(days=1 if end else 0)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            f"{option}: {text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time", 2
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def _dimensions(values: Sequence[str], period: Period | None) -> tuple[Dimension, ...]:
    chosen: list[Dimension] = []
    for value in (v.strip() for text in values for v in text.split(",")):
        if not value:
            continue
        try:
            chosen.append(Dimension(value))
        except ValueError:
            known = ", ".join(d.value for d in Dimension)
            raise fail(f"--by: unknown dimension {value!r}; use {known}", 2) from None
    if period is not None and Dimension.PERIOD not in chosen:
        chosen.insert(0, Dimension.PERIOD)
    return tuple(dict.fromkeys(chosen))


def _targets(values: Sequence[str]) -> Targets:
    """DEFAULT_TARGETS with `metric:SEVn=duration` overrides, e.g. `tta:SEV1=5m`."""
    targets = {metric: dict(goals) for metric, goals in DEFAULT_TARGETS.items()}
    for text in values:
        try:
            name, rest = text.split(":", 1)
            severity, duration = rest.split("=", 1)
            goal = parse_duration(duration.strip()).total_seconds()
            targets.setdefault(Metric(name.strip().lower()), {})[
                Severity(severity.strip().upper())
            ] = goal
        except (ValueError, DurationError) as err:
            detail = f" ({err})" if isinstance(err, DurationError) else ""
            raise fail(f"--target: {text!r} is not like tta:SEV1=5m{detail}", 2) from None
    return targets


async def read_metrics(
    store: SqlStore,
    start: dt.datetime | None,
    end: dt.datetime | None,
    skew_tolerance: float,
    *,
    rebuild: bool = False,
    with_timestamps: bool = False,
) -> list[IncidentMetrics]:
    """Every incident declared in [start, end), as metrics from its timeline: each incident's
    timestamp fold is first brought up to its newest entry (store/folds.py), then read."""
    since = start - DECLARED_MARGIN if start else None
    until = end + DECLARED_MARGIN if end else None
    with Progress(
        TextColumn("[bold]timelines"),
        BarColumn(),
        MofNCompleteColumn(),
        console=errors,  # stdout may be carrying --json or --csv
        transient=True,
    ) as progress:
        task = progress.add_task("timelines", total=None, visible=False)

        def advanced(done: int, total: int) -> None:
            # Only a backlog worth watching shows a bar: a store kept current folds a few.
            progress.update(task, completed=done, total=total, visible=total >= PROGRESS_FROM)

        if with_timestamps:  # each incident's record in --json carries its canonical timestamps
            await store.refresh_folds(rebuild=rebuild, progress=advanced)
            return [
                incident_metrics(stamps, team=team, is_drill=drill, skew_tolerance=skew_tolerance)
                for stamps, team, drill in await store.folded_timestamps(since, until)
            ]
        # The figures are read while the folds are brought up to date (on PostgreSQL, on
        # another connection); those of the incidents that moved are read again after.
        reading = asyncio.ensure_future(store.folded_figures(since, until))
        try:
            moved = await store.refresh_folds(rebuild=rebuild, progress=advanced)
            found = {row[0]: row for row in await reading}
        finally:
            reading.cancel()
    if len(moved) > REREAD_AT_MOST:  # a backlog (or --rebuild): read them all again
        found = {row[0]: row for row in await store.folded_figures(since, until)}
    elif moved:
        found.update((row[0], row) for row in await store.folded_figures(since, until, moved))
    return [
        metrics_from_figures(figures, team=team, is_drill=drill, skew_tolerance=skew_tolerance)
        for _, figures, team, drill in sorted(found.values())
    ]


def metrics(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option("--from", help="first day, by declared_at (YYYY-MM-DD or ISO time, UTC)"),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--to", help="last day, included (an ISO time is excluded instead)"),
    ] = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by", help="group by severity, service, team, playbook, period (comma-separated)"
        ),
    ] = None,
    period: Annotated[
        Period | None, typer.Option("--period", help="add a period dimension (UTC calendar)")
    ] = None,
    min_n: Annotated[
        int, typer.Option("--min-n", min=1, help="withhold percentiles and means below this n")
    ] = DEFAULT_MIN_N,
    skew_tolerance: Annotated[
        float,
        typer.Option(
            "--skew-tolerance",
            min=0,
            help="seconds a duration may be negative (clock skew) and still count, as 0",
        ),
    ] = DEFAULT_SKEW_TOLERANCE,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", help="override a target, e.g. tta:SEV1=5m (repeatable)"),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="measure open incidents' ages to this time")
    ] = None,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="fold every timeline again from its first entry, not just what is new",
        ),
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="one CSV row per group and metric")] = False,
    chart: Annotated[
        Path | None,
        typer.Option("--chart", help="also write the p50 TTA/TTR trend per period (.png, .svg)"),
    ] = None,
    otlp: Annotated[
        str | None,
        typer.Option(
            "--otlp",
            help="also send the durations as OpenTelemetry histograms to this OTLP/HTTP "
            "metrics URL, e.g. http://collector:4318/v1/metrics",
        ),
    ] = None,
) -> None:
    """Response metrics per severity (or service, team, playbook, period), from timelines."""
    if json and as_csv:
        raise fail("choose one of --json and --csv", 2)
    fmt = chart.suffix.lower().lstrip(".") if chart is not None else ""
    if chart is not None and fmt not in ("png", "svg"):
        raise fail(f"--chart: {chart} must end in .png or .svg", 2)
    start = _when(since, option="--from") if since else None
    end = _when(until, option="--to", end=True) if until else None
    fixed_as_of = _when(as_of, option="--as-of") if as_of else None
    dimensions = _dimensions(by or ["severity"], period)
    targets = _targets(target or [])

    async def go() -> tuple[list[IncidentMetrics], dt.datetime]:
        async with opened_store(ctx) as (store, clock):
            found = await read_metrics(
                store, start, end, skew_tolerance, rebuild=rebuild, with_timestamps=json
            )
            return found, fixed_as_of or clock.now()

    # No cyclic collections from reading to printing: a year of incidents is a few hundred
    # thousand small, acyclic objects, which reference counting frees; a collection over them
    # was a fifth of the command's time (heap.collector_paused).
    with collector_paused():
        found, now = run(go())

        def report(by: Sequence[Dimension], every: Period | None) -> MetricsReport:
            return aggregate(
                found,
                as_of=now,
                by=by,
                period=every,
                start=start,
                end=end,
                min_n=min_n,
                skew_tolerance=skew_tolerance,
                targets=targets,
            )

        grouped = report(dimensions, period)
        if json:
            chosen = sorted(in_range(found, start, end), key=lambda i: i.number)
            print_json(report_json(grouped, chosen))
        elif as_csv:
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(csv_header(grouped))
            writer.writerows(csv_rows(grouped))
        else:
            console.print(render(grouped))
        if chart is not None:
            # Imported here: matplotlib takes a while to load, and only this option needs it.
            from orchestrator.report.charts import render_trend  # noqa: PLC0415

            trend = report((Dimension.PERIOD, Dimension.SEVERITY), period or Period.MONTH)
            chart.write_bytes(render_trend(trend, fmt))
            (errors if json or as_csv else console).print(
                f"chart written to {chart}", highlight=False
            )
        if otlp is not None:
            _push(otlp, found, start, end, quiet=json or as_csv)


def _push(
    endpoint: str,
    found: list[IncidentMetrics],
    start: dt.datetime | None,
    end: dt.datetime | None,
    *,
    quiet: bool,
) -> None:
    # Imported here: the exporter and protobuf take a while to load, and only this needs them.
    from orchestrator.telemetry import ExportError, push_histograms  # noqa: PLC0415

    try:
        sent = push_histograms(endpoint, found, start, end)
    except ExportError as err:
        raise fail(f"--otlp: {err}", 1) from None
    (errors if quiet else console).print(
        f"sent the durations of {sent} incidents to {endpoint} as histograms", highlight=False
    )


def human(seconds: float | None) -> str:
    """A duration a reader takes in at a glance: 45s, 4m30s, 2h05m, 3d04h."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _share(stat: Stat) -> str:
    if stat.within_target is None:
        return "—"
    goal = f" ≤{format_duration(dt.timedelta(seconds=stat.target))}" if stat.target else ""
    return f"{stat.within_target:.0%} ({stat.met}/{stat.targeted}){goal}"


def _notes(stat: Stat, metric: Metric) -> str:
    notes = []
    if stat.missing:
        notes.append(f"{stat.missing} {MISSING.get(metric, 'without the timestamps')}")
    if stat.clamped:
        notes.append(f"{stat.clamped} skew → 0")
    if stat.skewed:
        notes.append(f"{stat.skewed} skewed, left out")
    return ", ".join(notes)


def _key_cells(report: MetricsReport, found: GroupReport) -> list[str]:
    return [found.key.get(d.value, ALL) for d in report.by]


def metric_table(report: MetricsReport, metric: Metric) -> Table:
    info = METRICS[metric]
    note = f" ({info.note})" if info.note else ""
    table = Table(
        title=f"{metric.value.upper()}: {info.title} = {info.formula}{note}",
        caption=f"{info.headline} here means the p50 (median); the mean is secondary: "
        "durations are heavily skewed",
        title_justify="left",
        caption_justify="left",
    )
    for dimension in report.by:
        table.add_column(dimension.value, no_wrap=True)
    for name in ("n", "p50", "p90", "max"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column(f"{info.verb} within target", no_wrap=True)
    table.add_column("mean (secondary)", justify="right", style="dim", no_wrap=True)
    table.add_column("notes", style="dim")
    for found in (*report.groups, report.total):
        stat = found.stats[metric]
        withheld = f"n<{report.min_n}" if stat.suppressed else "—"
        table.add_row(
            *_key_cells(report, found),
            str(stat.n),
            human(stat.p50) if stat.p50 is not None else withheld,
            human(stat.p90) if stat.p90 is not None else withheld,
            human(stat.max),
            _share(stat),
            human(stat.mean) if stat.mean is not None else withheld,
            _notes(stat, metric),
            style="bold" if found is report.total else "",
            end_section=found is report.groups[-1] if report.groups else False,
        )
    return table


def counts_table(report: MetricsReport) -> Table:
    table = Table(title="Incidents declared in the range", title_justify="left")
    for dimension in report.by:
        table.add_column(dimension.value, no_wrap=True)
    for name in ("declared", "counted", "open", "oldest open", "never acked", *EXCLUSIONS):
        table.add_column(name, justify="right", no_wrap=True)
    for found in (*report.groups, report.total):
        table.add_row(
            *_key_cells(report, found),
            str(found.incidents),
            str(found.counted),
            str(found.open),
            human(found.open_age_max),
            str(found.never_acknowledged),
            *(str(found.excluded[reason]) for reason in EXCLUSIONS),
            style="bold" if found is report.total else "",
        )
    return table


def render(report: MetricsReport) -> Group:
    if report.start or report.end:
        since = f" from {when(report.start)}" if report.start else ""
        before = f" before {when(report.end)}" if report.end else ""
        scope = f"Incidents declared{since}{before}"
    else:
        scope = "All incidents"
    header = Text(f"{scope}; open incidents aged to {when(report.as_of)} (UTC)", style="bold")
    footer = Text(
        f"Percentiles are nearest-rank and withheld below n = {report.min_n}. Counted: "
        "incidents over and operational; open incidents are counted and aged, not timed; drills, "
        "declined, merged and canceled incidents are left out. Negative durations within "
        f"{report.skew_tolerance:g}s (clock skew) count as 0; larger ones are left out.",
        style="dim",
    )
    tables = [metric_table(report, metric) for metric in Metric]
    return Group(header, counts_table(report), *tables, footer)
