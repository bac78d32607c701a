"""`orchestrator config check`: are the settings right, and does everything they point at
answer?"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import console, print_json, run, valid_settings

config = typer.Typer(help="The orchestrator's own configuration.", no_args_is_help=True)


@config.command()
def check(
    ctx: typer.Context,
    json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Validate the settings and try each connection: the database, the playbooks against the
    configured handlers, Kafka, Slack (auth.test), PagerDuty. Exit 1 if anything is wrong,
    2 if the settings themselves are invalid. Nothing is paged or posted."""
    from orchestrator.config_check import check_configuration  # noqa: PLC0415 - see common

    settings = valid_settings(ctx, with_kafka_topics=True)
    checks = run(check_configuration(settings))
    if json:
        print_json({"ok": all(c.ok for c in checks), "checks": checks})
    else:
        table = Table(title="Configuration")
        for column in ("check", "", "detail"):
            table.add_column(column)
        for item in checks:
            mark = Text("ok", style="green") if item.ok else Text("FAIL", style="bold red")
            table.add_row(item.name, mark, item.detail)
        console.print(table)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@config.command()
def settings(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="as the Markdown table in docs/operations.md")
    ] = False,
) -> None:
    """Every setting: its environment variable, default and meaning."""
    from orchestrator.settings import settings_table  # noqa: PLC0415

    rows = settings_table()
    if markdown:
        typer.echo(markdown_table(rows))
        return
    table = Table(title="Settings (environment or .env)")
    for column in ("variable", "default", "meaning"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def markdown_table(rows: list[tuple[str, str, str]]) -> str:
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for variable, default, meaning in rows:
        cells = (f"`{variable}`", f"`{default}`" if default != "(secret)" else default, meaning)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)
