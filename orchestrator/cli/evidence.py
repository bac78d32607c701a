"""`orchestrator evidence`: sign checkpoints, verify the store or an archive offline, export."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from orchestrator.cli.common import console, fail, opened_app, print_json, run
from orchestrator.evidence import Verification, take_checkpoint, verify_archive, verify_store
from orchestrator.report.checkpoints import public_hex, signing_key
from orchestrator.settings import Settings

evidence = typer.Typer(help="Tamper-evident timeline: checkpoints, verification, export.")

JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable output")]
KeyOption = Annotated[
    str | None,
    typer.Option("--public-key", help="the Ed25519 public key (hex) you were given to trust"),
]


def _key(settings: Settings) -> str:
    if settings.evidence_signing_key is None:
        raise fail("set ORCH_EVIDENCE_SIGNING_KEY (Ed25519 PEM, or a 32-byte hex seed)")
    return settings.evidence_signing_key.get_secret_value()


@evidence.command("public-key")
def public_key(ctx: typer.Context) -> None:
    """The public key auditors verify checkpoints with (it is not a secret)."""
    try:
        print(public_hex(signing_key(_key(Settings()))))
    except ValueError as err:
        raise fail(f"ORCH_EVIDENCE_SIGNING_KEY: {err}") from None


@evidence.command("checkpoint")
def checkpoint(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Sign the heads of every chain that moved since the last checkpoint."""

    async def go() -> None:
        async with opened_app(ctx) as app:
            try:
                key = signing_key(_key(app.settings))
            except ValueError as err:
                raise fail(f"ORCH_EVIDENCE_SIGNING_KEY: {err}") from None
            taken = await take_checkpoint(app.store, key, app.clock)
        if json:
            print_json(taken.as_json())
        else:
            console.print(
                f"checkpoint {taken.number}: {len(taken.heads)} chain head(s) signed, "
                f"digest {taken.digest[:16]}",
                highlight=False,
            )

    run(go())


@evidence.command("verify")
def verify(
    ctx: typer.Context,
    archive: Annotated[
        Path | None, typer.Option(help="an exported archive to check offline, instead of the store")
    ] = None,
    public_key: KeyOption = None,
    json: JsonFlag = False,
) -> None:
    """Check every chain and the signed checkpoints; report each break precisely."""
    if archive is not None:
        if not archive.is_file():
            raise fail(f"{archive}: no such file")
        _report(verify_archive(archive, public_key), json)
        return

    async def go() -> None:
        async with opened_app(ctx) as app:
            with _progress("verifying chains") as (bar, task):
                result = await verify_store(app.store, public_key, lambda n: bar.advance(task, n))
        _report(result, json)

    run(go())


@evidence.command("export")
def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="the archive to write, e.g. q3.zip")],
    start: Annotated[
        dt.datetime | None, typer.Option("--from", help="incidents declared from (UTC)")
    ] = None,
    end: Annotated[dt.datetime | None, typer.Option("--to", help="... until, exclusive")] = None,
    public_key: KeyOption = None,
    json: JsonFlag = False,
) -> None:
    """Write the SPEC §5 evidence archive for a period, with its verification result."""
    period = (_utc(start), _utc(end))

    # Imported here: the archive writer and the template loader (jinja2, YAML) are a good part
    # of start-up, which every other command would pay.
    from orchestrator.evidence_export import export_archive  # noqa: PLC0415
    from orchestrator.playbook.loader import document_template  # noqa: PLC0415

    async def go() -> None:
        async with opened_app(ctx) as app:
            report = document_template(app.settings.playbooks_dir, "drill-report.md.j2")
            if report is None and await app.store.list_drill_runs(*period):
                raise fail(
                    f"the period holds drill runs but {app.settings.playbooks_dir}/templates has "
                    "no drill-report.md.j2 for their after-action reports: copy the shipped one"
                )
            with out.open("wb") as sink, _progress("exporting incidents") as (bar, task):
                manifest = await export_archive(
                    app.store,
                    sink,
                    app.clock,
                    period=period,
                    trusted_key=public_key,
                    progress=lambda n: bar.advance(task, n),
                    drill_template=report,
                )
        if json:
            print_json({"archive": str(out), **manifest})
            return
        verified = manifest["verification"]
        console.print(
            f"{out}: {manifest['counts']['incidents']} incidents, "
            f"{manifest['counts']['entries']} timeline entries; "
            f"verification {'passed' if verified['ok'] else 'FAILED'}",
            highlight=False,
        )

    run(go())


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


@contextlib.contextmanager
def _progress(what: str) -> Iterator[tuple[Progress, TaskID]]:
    """A progress bar of incidents done (their number is not known up front)."""
    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        yield bar, bar.add_task("", total=None)


def _report(result: Verification, json: bool) -> None:
    if json:
        print_json(result.as_json())
    else:
        console.print(
            f"{result.chains} chains, {result.entries} entries, {result.checkpoints} signed "
            "checkpoints checked",
            highlight=False,
        )
        if result.breaks:
            table = Table("incident", "entry", "what", "expected", "found")
            for found in result.breaks:
                table.add_row(
                    f"#{found.incident}",
                    str(found.seq or "-"),
                    found.kind,
                    found.expected,
                    found.found,
                )
            console.print(table)
        for problem in result.problems:
            console.print(f"problem: {problem}", highlight=False, markup=False)
        console.print("intact" if result.ok else "BROKEN: see above", highlight=False)
    if not result.ok:
        raise typer.Exit(1)
