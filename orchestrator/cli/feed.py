"""`orchestrator run` and `orchestrator ingest`: feed alert payloads through the pipeline."""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.cli.common import console, errors, fail, opened_app, print_json, run
from orchestrator.cli.serve import serve_forever
from orchestrator.cli.views import actions_table, incidents_table, timeline_table
from orchestrator.clock import ManualClock
from orchestrator.ingest.alert import AlertStatus, SourceFormat
from orchestrator.ingest.normalize import NormalizeError, normalize, split_stream
from orchestrator.store.protocols import Disposition

if TYPE_CHECKING:
    from orchestrator.app import App
    from orchestrator.pipeline import IngestReport

REPLAY_FALLBACK = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass
class FeedSummary:
    payloads: int = 0
    dead_letters: int = 0
    truncated: int = 0
    dispositions: Counter[str] = field(default_factory=Counter)
    opened: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    attempts: int = 0

    def add(self, report: IngestReport) -> None:
        self.payloads += 1
        self.truncated += report.truncated
        if report.error is not None:
            self.dead_letters += 1
            self.errors.append(f"{report.origin}: {report.error}")
        for outcome in report.outcomes:
            self.dispositions[outcome.disposition.value] += 1
            if outcome.disposition is Disposition.OPENED and outcome.incident_number:
                self.opened.append(outcome.incident_number)

    def as_dict(self) -> dict[str, object]:
        return {
            "payloads": self.payloads,
            "dead_letters": self.dead_letters,
            "truncated_alerts": self.truncated,
            "alerts": dict(self.dispositions),
            "incidents_opened": self.opened,
            "errors": self.errors,
            "delivery_attempts": self.attempts,
        }


def _read(source: str) -> tuple[str, bytes]:
    if source == "-":
        return "stdin", sys.stdin.buffer.read()
    path = Path(source)
    if not path.is_file():
        raise fail(f"{source}: no such file")
    return path.name, path.read_bytes()


Batch = tuple[str, list[tuple[int, bytes]]]


def read_batches(sources: list[str]) -> list[Batch]:
    return [(name, list(split_stream(data))) for name, data in map(_read, sources)]


def payload_time(raw: bytes, fallback: dt.datetime) -> dt.datetime | None:
    """When a payload happened by its own account: its latest alert start or end."""
    try:
        alerts = normalize(raw, received_at=fallback).alerts
    except NormalizeError:
        return None
    times = [
        a.ends_at if a.status is AlertStatus.RESOLVED and a.ends_at else a.starts_at for a in alerts
    ]
    return max(times, default=None)


def first_time(batches: list[Batch]) -> dt.datetime:
    for _, items in batches:
        for _, raw in items:
            if (when := payload_time(raw, REPLAY_FALLBACK)) is not None:
                return when
    return REPLAY_FALLBACK


async def _replay_step(app: App, replay: ManualClock, raw: bytes) -> None:
    """Moves the simulated clock to the payload's time, firing the timers that came due first."""
    target = payload_time(raw, replay.now())
    if target is None or target <= replay.now():
        return
    from orchestrator.scheduler import TimerService  # noqa: PLC0415 - see cli/common.opened_app

    timers = TimerService(app.store, app.pipeline, replay)
    while (due := await app.store.next_timer_due()) is not None and due <= target:
        replay.set(max(due, replay.now()))
        await timers.fire_due()
        await app.dispatcher.drain()
    replay.set(target)


async def feed(
    app: App,
    batches: list[Batch],
    fmt: SourceFormat | None,
    *,
    show_progress: bool,
    replay: ManualClock | None = None,
) -> FeedSummary:
    summary = FeedSummary()
    total = sum(len(items) for _, items in batches)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress,
        transient=False,
    ) as progress:
        task = progress.add_task("alerts in", total=total, status="")
        for name, items in batches:
            for line, raw in items:
                if replay is not None:
                    await _replay_step(app, replay, raw)
                report = await app.pipeline.ingest_bytes(raw, f"{name}:{line}", format=fmt)
                summary.add(report)
                summary.attempts += await app.dispatcher.drain()
                if report.error:
                    # stderr: stdout may be carrying --json for a machine
                    errors.print(
                        f"[yellow]dead letter[/] {name}:{line}: {report.error}",
                        soft_wrap=True,
                        highlight=False,
                    )
                progress.update(
                    task,
                    advance=1,
                    status=f"{len(summary.opened)} incidents, {summary.dead_letters} dead letters",
                )
        deliver = progress.add_task("actions out", total=None, status="")
        summary.attempts += await app.dispatcher.drain()
        progress.update(deliver, total=1, completed=1, status=f"{summary.attempts} delivered")
    return summary


def _print_line(line: str) -> None:
    console.print(line, markup=False, highlight=False, overflow="ellipsis", no_wrap=True)


def _summary_table(summary: FeedSummary) -> Table:
    table = Table(title="What happened", title_justify="left")
    table.add_column("alerts by disposition")
    table.add_column("count", justify="right")
    for disposition in Disposition:
        if summary.dispositions[disposition.value]:
            table.add_row(disposition.value, str(summary.dispositions[disposition.value]))
    table.add_row("dead-lettered payloads", str(summary.dead_letters))
    if summary.truncated:
        table.add_row("truncated by the sender", str(summary.truncated))
    return table


Inputs = Annotated[list[str], typer.Argument(help="files of JSON or JSON lines; - for stdin")]
Format = Annotated[
    SourceFormat | None, typer.Option("--format", help="skip detection: the payloads' format")
]


def ingest(ctx: typer.Context, inputs: Inputs, fmt: Format = None, json: bool = False) -> None:
    """Push alert payloads (native, Alertmanager, Grafana, CloudEvents) through the pipeline."""

    batches = read_batches(inputs)

    async def go() -> FeedSummary:
        async with opened_app(ctx) as app:
            return await feed(app, batches, fmt, show_progress=not json and console.is_terminal)

    summary = run(go())
    if json:
        print_json(summary.as_dict())
    else:
        console.print(_summary_table(summary))
        if summary.opened:
            console.print(f"Opened incidents: {', '.join(f'#{n}' for n in summary.opened)}")
    if summary.dead_letters:
        errors.print(f"{summary.dead_letters} payload(s) went to the dead letters")


def run_job(
    ctx: typer.Context,
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input", "-i", help="consume these files (JSON or JSON lines) instead of serving"
        ),
    ] = None,
    replay: Annotated[
        bool,
        typer.Option(
            help="replay the stream at its own timestamps on a simulated clock, firing "
            "escalation timers as they come due (as drills do)"
        ),
    ] = False,
    json: bool = False,
) -> None:
    """The main job. Without --input: the service (Kafka consumer, HTTP intake, dispatcher,
    timers) until SIGTERM. With --input: consume those files, deliver actions, report, exit."""
    if not inputs:
        serve_forever(ctx)
        return
    batches = read_batches(inputs)
    clock = ManualClock(first_time(batches)) if replay else None

    async def go() -> None:
        out = None if json else _print_line
        async with opened_app(ctx, out=out, clock=clock) as app:
            if not json:
                mode = (
                    "[bold yellow]DRY-RUN[/] (printed, not sent)"
                    if app.settings.dry_run
                    else "live"
                )
                console.rule("[bold]incident orchestrator")
                console.print(
                    f"store: {app.settings.safe_database_url()}   "
                    f"playbooks: {len(app.playbooks)} from {app.settings.playbooks_dir}   "
                    f"actions: {mode}"
                )
            summary = await feed(app, batches, None, show_progress=not json, replay=clock)
            opened = [i for i in await app.store.list_incidents() if i.number in summary.opened]
            opened.sort(key=lambda i: i.number)
            busiest = None
            if opened:
                counts = {i.number: len(await app.store.timeline(i.number)) for i in opened}
                busiest = max(opened, key=lambda i: (i.severity.rank * -1, counts[i.number]))
            entries = await app.store.timeline(busiest.number) if busiest else []
            items = [
                a
                for a in await app.store.list_actions()
                if a.action.incident_number in summary.opened
            ]
        if json:
            print_json({"summary": summary.as_dict(), "incidents": opened, "actions": items})
            return
        console.print(_summary_table(summary))
        console.print(incidents_table(opened, "Incidents opened"))
        if busiest is not None:
            console.print(timeline_table(busiest.number, entries))
        console.print(actions_table(items, "Dry-run actions taken", keys=False))

    run(go())
