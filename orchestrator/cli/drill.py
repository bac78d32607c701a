"""`orchestrator drill`: validate scenarios, run them (simulated or live), control a live run,
and write the after-action report."""

from __future__ import annotations

import json as jsonlib
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import console, errors, fail, opened_app, opened_store, print_json, run
from orchestrator.drill.record import DrillRun, DrillStateError, LogLine, RunState

if TYPE_CHECKING:
    from orchestrator.drill.loader import LoadedScenario

drill = typer.Typer(
    help="Tabletop drills: scenarios played through the real playbooks on a simulated clock.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable output")]
RunId = Annotated[str, typer.Argument(help="drill run id, as `drill list` shows it")]
Files = Annotated[list[Path], typer.Argument(help="scenario files", exists=False)]


class DocFormat(StrEnum):
    MD = "md"
    HTML = "html"


def _load(path: Path) -> LoadedScenario:
    from orchestrator.drill.loader import ScenarioError, load_scenario  # noqa: PLC0415

    try:
        return load_scenario(path)
    except ScenarioError as err:
        for problem in err.problems:
            errors.print(str(problem), highlight=False, markup=False, soft_wrap=True)
        raise fail(f"{path}: {len(err.problems)} problem(s); the scenario was not run", 2) from None


@drill.command()
def schema() -> None:
    """Print the JSON Schema of the scenario format (for editors and CI)."""
    from orchestrator.drill.scenario import scenario_json_schema  # noqa: PLC0415

    typer.echo(jsonlib.dumps(scenario_json_schema(), indent=2))


@drill.command()
def validate(files: Files, json: JsonFlag = False) -> None:
    """Check scenario files: every problem with its file:line:column; exit 2 if any."""
    from orchestrator.drill.loader import ScenarioError, load_scenario  # noqa: PLC0415

    report: list[dict[str, Any]] = []
    for path in files:
        try:
            loaded = load_scenario(path)
        except ScenarioError as err:
            report.append(
                {"file": str(path), "ok": False, "problems": [str(p) for p in err.problems]}
            )
            continue
        scenario = loaded.scenario
        report.append(
            {
                "file": str(path),
                "ok": True,
                "id": scenario.id,
                "title": scenario.title,
                "sha256": loaded.sha256,
                "injects": len(scenario.injects),
                "expected": len(scenario.expected),
            }
        )
    if json:
        print_json(report)
    else:
        for item in report:
            if item["ok"]:
                console.print(
                    f"[green]ok[/] {item['file']}: {item['id']} — {item['title']} "
                    f"({item['injects']} injects, {item['expected']} expected actions)",
                    highlight=False,
                )
            else:
                for problem in item["problems"]:
                    errors.print(problem, highlight=False, markup=False, soft_wrap=True)
    if not all(item["ok"] for item in report):
        raise typer.Exit(2)


@drill.command("run")
def run_drill(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="the scenario file")],
    live: Annotated[
        bool, typer.Option("--live", help="injects in real time; players respond via Slack/CLI")
    ] = False,
    speed: Annotated[
        float | None,
        typer.Option("--speed", min=0.01, max=3600, help="live: scenario seconds per second"),
    ] = None,
    show_actions: Annotated[
        bool, typer.Option("--show-actions", help="print each action the sandbox receives")
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Play a scenario through the real ingest, playbooks, engine, timers and dispatcher.

    Simulated (the default): a clock that jumps from event to event, actions delivered into a
    sandbox, players scripted by the scenario; a two-hour scenario takes seconds. Live: injects
    arrive in real time, players respond through Slack and the CLI, and only what the
    scenario's safety block allows is sent; pause, resume or end it with `drill pause|resume|
    endex`."""
    loaded = _load(file)
    finished = run(_play(ctx, loaded, live=live, speed=speed, show=show_actions, quiet=json))
    if json:
        print_json({"id": finished.id, "state": finished.state.value, **finished.result})
        return
    _print_scores(finished)
    console.print(
        f"\nAfter-action report: [bold]orchestrator drill report {finished.id}[/]", highlight=False
    )


async def _play(
    ctx: typer.Context,
    loaded: LoadedScenario,
    *,
    live: bool,
    speed: float | None,
    show: bool,
    quiet: bool,
) -> DrillRun:
    from orchestrator.app import drill_handlers  # noqa: PLC0415 - see cli/common.opened_app
    from orchestrator.cli.common import valid_settings  # noqa: PLC0415
    from orchestrator.clock import SystemClock  # noqa: PLC0415
    from orchestrator.drill.clocks import ScaledClock  # noqa: PLC0415
    from orchestrator.drill.runner import DrillRunner  # noqa: PLC0415
    from orchestrator.drill.safety import SafetyGuard  # noqa: PLC0415

    scenario = loaded.scenario
    settings = valid_settings(ctx)
    out = (lambda line: console.print(Text(line, style="dim"))) if show and not quiet else None
    inner = drill_handlers(settings, live=live, out=out)
    guard = SafetyGuard(inner, scenario.safety, enforce=live)
    async with opened_app(ctx, handlers=[guard]) as app:
        clock = ScaledClock(SystemClock(), speed or scenario.clock.speed) if live else None
        runner = DrillRunner(
            loaded,
            app.store,
            app.playbooks,
            app.handlers,
            clock=clock,
            live=live,
            policy_defaults=app.pipeline.policy_defaults,
            on_log=None if quiet else _print_line,
        )
        guard.on_refusal = lambda action, reason: runner.refused(action.name, reason, live)
        if not quiet:
            banner = f"{scenario.classification} — {scenario.title}"
            console.rule(Text(banner, style="bold yellow"))
        return await runner.play()


_STYLE = {
    "inject": "cyan",
    "contingency": "magenta",
    "response": "green",
    "observed": "white",
    "skipped": "yellow",
    "missed": "red",
    "refused": "bold red",
    "safety": "yellow",
    "control": "bold",
}


def _print_line(line: LogLine) -> None:
    text = Text(f"{_offset(line.offset):>9}  ", style="dim")
    text.append(f"{line.kind:<11} ", style=_STYLE.get(line.kind, ""))
    text.append(line.text)
    console.print(text, highlight=False)


def _offset(seconds: float) -> str:
    from orchestrator.report.drill_report import format_offset  # noqa: PLC0415

    return format_offset(seconds)


def _print_scores(finished: DrillRun) -> None:
    result = finished.result
    table = Table(title=f"Drill {finished.id}: expected actions")
    for column in ("action", "by", "deadline", "observed", "outcome", "points"):
        table.add_column(column)
    colour = {"met": "green", "late": "yellow", "missed": "red"}
    for item in result.get("scores", []):
        observed = item["observed"]
        table.add_row(
            f"{item['id']} ({item['action']})",
            item["by"] or "anyone",
            _offset(item["deadline"]),
            _offset(observed) if observed is not None else "—",
            Text(item["outcome"], style=colour[item["outcome"]]),
            f"{item['points']}/{item['max_points']}",
        )
    console.print(table)
    objectives = Table(title="Objectives")
    for column in ("objective", "controls", "rating"):
        objectives.add_column(column)
    for item in result.get("objectives", []):
        objectives.add_row(item["text"], ", ".join(item["controls"]), item["rating"])
    console.print(objectives)
    total = result.get("score", {})
    console.print(f"Score: [bold]{total.get('points', 0)}/{total.get('max', 0)}[/]")


@drill.command("list")
def list_runs(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Drill runs in this store, oldest first."""
    found = run(_runs(ctx))
    if json:
        print_json(
            [
                {
                    "id": r.id,
                    "scenario": r.scenario_id,
                    "title": r.title,
                    "mode": r.mode.value,
                    "state": r.state.value,
                    "started_at": r.started_at,
                    "ended_at": r.ended_at,
                    "score": r.result.get("score"),
                    "incidents": r.result.get("incidents", []),
                }
                for r in found
            ]
        )
        return
    table = Table(title="Drill runs")
    for column in ("id", "title", "mode", "state", "started", "score", "incidents"):
        table.add_column(column)
    for r in found:
        score = r.result.get("score") or {}
        table.add_row(
            r.id,
            r.title,
            r.mode.value,
            r.state.value,
            r.started_at.strftime("%Y-%m-%d %H:%M"),
            f"{score.get('points', 0)}/{score.get('max', 0)}" if score else "—",
            ", ".join(f"#{n}" for n in r.result.get("incidents", [])),
        )
    console.print(table)


async def _runs(ctx: typer.Context) -> list[DrillRun]:
    async with opened_store(ctx) as (store, _):
        return await store.list_drill_runs()


@drill.command()
def report(
    ctx: typer.Context,
    run_id: RunId,
    format: Annotated[DocFormat, typer.Option("--format", help="md or html")] = DocFormat.MD,
    out: Annotated[Path | None, typer.Option("--out", help="write to FILE")] = None,
) -> None:
    """The after-action report: objectives rated, expected actions met or missed, the drill's
    timeline, what the playbooks did, strengths, improvements and corrective actions."""
    text = run(_report(ctx, run_id, format))
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {out}", highlight=False)


async def _report(ctx: typer.Context, run_id: str, format: DocFormat) -> str:
    from orchestrator.cli.common import valid_settings  # noqa: PLC0415
    from orchestrator.playbook.loader import document_template  # noqa: PLC0415
    from orchestrator.report.drill_report import render_drill_report  # noqa: PLC0415

    name = f"drill-report.{format.value}.j2"
    template = document_template(valid_settings(ctx).playbooks_dir, name)
    if template is None:
        raise fail(f"no templates/{name} in the playbooks folder: copy the shipped one there")
    async with opened_store(ctx) as (store, _):
        found = await store.get_drill_run(run_id)
        if found is None:
            raise fail(f"no drill run {run_id!r} (see `orchestrator drill list`)")
        items = await store.drill_corrective_actions(found)
    return render_drill_report(found, items, template)


def _control(ctx: typer.Context, run_id: str, state: RunState) -> None:
    run(_set_state(ctx, run_id, state))


async def _set_state(ctx: typer.Context, run_id: str, state: RunState) -> None:
    async with opened_store(ctx) as (store, clock):
        try:
            await store.set_drill_state(run_id, state)
        except DrillStateError as err:
            raise fail(str(err)) from None
        if state is RunState.ENDED:
            # Whether or not its runner is still there to see it: nothing of it fires again.
            await store.cancel_drill_timers(run_id, clock.now())
    console.print(f"drill {run_id}: {state.value}", highlight=False)


@drill.command()
def pause(ctx: typer.Context, run_id: RunId) -> None:
    """Pause a live drill: no injects, timers or scripted players until it resumes."""
    _control(ctx, run_id, RunState.PAUSED)


@drill.command()
def resume(ctx: typer.Context, run_id: RunId) -> None:
    """Resume a paused live drill; what was still to come comes that much later."""
    _control(ctx, run_id, RunState.RUNNING)


@drill.command()
def endex(ctx: typer.Context, run_id: RunId) -> None:
    """End the exercise (ENDEX): the runner scores it and closes its incidents."""
    _control(ctx, run_id, RunState.ENDED)
