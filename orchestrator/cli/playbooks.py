"""`orchestrator playbooks …`: validate, print the schema, list, and run playbook test cases."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import console, errors, fail, options, print_json, run
from orchestrator.playbook.actions import ACTION_NAMES

if TYPE_CHECKING:
    from orchestrator.playbook.playbookset import PlaybookSet

playbooks = typer.Typer(help="Check, describe and test playbooks.", no_args_is_help=True)

Folder = Annotated[
    Path | None, typer.Argument(help="playbook folder (default: ORCH_PLAYBOOKS_DIR or playbooks/)")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _load(ctx: typer.Context, folder: Path | None, json: bool) -> PlaybookSet:
    # The loader (YAML, templates, models) is imported by the commands that load playbooks,
    # not by every command at start-up (cli/common.opened_app).
    from orchestrator.playbook.loader import PlaybookLoadError, load_playbooks  # noqa: PLC0415

    root = folder or options(ctx).settings().playbooks_dir
    try:
        return load_playbooks(root, known_actions=ACTION_NAMES)
    except PlaybookLoadError as err:
        if json:
            print_json({"ok": False, "problems": [str(p) for p in err.problems]})
        else:
            for problem in err.problems:
                # One problem per line, never wrapped: editors and CI read them as file:line:col.
                errors.print(str(problem), markup=False, highlight=False, soft_wrap=True)
            errors.print(f"[bold red]{len(err.problems)} problem(s)[/] in {root}")
        raise typer.Exit(1) from None


@playbooks.command()
def validate(ctx: typer.Context, folder: Folder = None, json: JsonFlag = False) -> None:
    """Check every playbook: schema, matchers, durations, templates, action names.

    Errors are printed as file:line:column: message; exit status 1 when there are any.
    """
    loaded = _load(ctx, folder, json)
    if json:
        print_json({"ok": True, "playbooks": [p.name for p in loaded]})
    else:
        console.print(f"[green]ok[/]: {len(loaded)} playbook(s) valid")


@playbooks.command("list")
def list_playbooks(ctx: typer.Context, folder: Folder = None, json: JsonFlag = False) -> None:
    """The playbooks in match order."""
    loaded = _load(ctx, folder, json)
    if json:
        print_json(
            [
                {
                    "name": p.name,
                    "file": p.source,
                    "version": p.version,
                    "match": p.match,
                    "owner": p.owner,
                    "tests": len(p.tests),
                }
                for p in loaded
            ]
        )
        return
    table = Table(title="Playbooks (first match wins, in this order)", title_justify="left")
    for column in ("name", "match", "severity", "group by", "tests", "file"):
        table.add_column(column)
    for p in loaded:
        severity = p.severity if isinstance(p.severity, str) else f"from {p.severity.from_label}"
        table.add_row(
            p.name,
            Text("\n".join(p.match)),
            str(severity),
            ", ".join(p.group_by),
            str(len(p.tests)),
            p.source,
        )
    console.print(table)


@playbooks.command()
def schema() -> None:
    """Print the JSON Schema of the playbook format (for editors and CI)."""
    from orchestrator.playbook.model import playbook_json_schema  # noqa: PLC0415 - see _load

    typer.echo(jsonlib.dumps(playbook_json_schema(), indent=2))


@playbooks.command("test")
def run_tests(ctx: typer.Context, folder: Folder = None, json: JsonFlag = False) -> None:
    """Run the test cases the playbooks carry: alerts in, expected match, incidents and actions."""
    from orchestrator.playbook_tests import run_playbook_tests  # noqa: PLC0415 - see _load

    loaded = _load(ctx, folder, json)
    results = run(run_playbook_tests(loaded))
    failed = [r for r in results if not r.passed]
    if json:
        print_json(
            {"passed": len(results) - len(failed), "failed": len(failed), "results": results}
        )
    else:
        table = Table(title="Playbook tests", title_justify="left")
        for column in ("playbook", "case", "result"):
            table.add_column(column)
        for result in results:
            verdict = (
                Text("pass", style="green")
                if result.passed
                else Text("FAIL: " + "; ".join(result.failures), style="red")
            )
            table.add_row(result.playbook, result.name, verdict)
        console.print(table)
        console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if not results:
        raise fail("no playbook carries any test case")
    if failed:
        raise typer.Exit(1)


@playbooks.command()
def init(
    folder: Annotated[Path, typer.Argument(help="where to put them (must not exist yet)")],
) -> None:
    """Copy the shipped playbooks, templates and drill scenarios into FOLDER, to adapt."""
    import shutil  # noqa: PLC0415

    from orchestrator.shipped import shipped_playbooks  # noqa: PLC0415

    source = shipped_playbooks()
    if source is None:
        raise fail("the shipped playbooks are not installed with this copy of the orchestrator")
    if folder.exists():
        raise fail(f"{folder} exists already: name a new folder", 2)
    shutil.copytree(source, folder)
    count = len(list(folder.glob("*.yaml")))
    console.print(f"{count} playbooks, their templates and drills copied to {folder}")
