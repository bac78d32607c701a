"""`orchestrator alerts …`: every alert received with its disposition, and the native format."""

from __future__ import annotations

import json as jsonlib
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import console, opened_app, print_json, run, short

alerts = typer.Typer(help="Alerts received and what became of each.", no_args_is_help=True)

DISPOSITION_STYLE = {"opened": "bold", "unmatched": "dim", "duplicate": "dim", "orphaned": "yellow"}


@alerts.command("list")
def list_alerts(
    ctx: typer.Context,
    incident: Annotated[int | None, typer.Option(help="only this incident's alerts")] = None,
    json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Every alert received, with its disposition (opened, grouped, unmatched, ...)."""

    async def go() -> None:
        async with opened_app(ctx) as app:
            records = await app.store.list_alerts(incident)
        if json:
            print_json(records)
            return
        table = Table(title="Alerts", title_justify="left")
        table.add_column("received (UTC)", no_wrap=True)
        table.add_column("alert", min_width=16)
        table.add_column("status", no_wrap=True)
        table.add_column("disposition", no_wrap=True)
        table.add_column("incident", justify="right", no_wrap=True)
        table.add_column("playbook", max_width=18, overflow="ellipsis", no_wrap=True)
        for record in records:
            labels = record.labels
            name = labels.get("alertname", "?")
            where = labels.get("service") or labels.get("instance") or ""
            table.add_row(
                short(record.received_at),
                Text(f"{name} {where}".strip()),
                record.status,
                Text(
                    record.disposition.value,
                    style=DISPOSITION_STYLE.get(record.disposition.value, ""),
                ),
                f"#{record.incident_number}" if record.incident_number else "—",
                record.playbook or "—",
            )
        console.print(table)

    run(go())


@alerts.command()
def schema() -> None:
    """Print the JSON Schema of the native alert format."""
    from orchestrator.ingest.normalize import native_alert_schema  # noqa: PLC0415 - see evidence

    typer.echo(jsonlib.dumps(native_alert_schema(), indent=2))
