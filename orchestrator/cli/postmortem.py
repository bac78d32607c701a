"""`orchestrator postmortem`: draft, import, check and approve postmortems; list late ones."""

from __future__ import annotations

import datetime as dt
import getpass
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import console, fail, opened_app, print_json, run, short
from orchestrator.incident.model import Actor, ActorKind, Incident
from orchestrator.report.action_items import ActionItemsError, parse_action_items, plan_import
from orchestrator.report.blameless import blame_phrases
from orchestrator.report.postmortem_record import PostmortemStatus
from orchestrator.store.postmortems import FollowUpError, NewActionItem
from orchestrator.store.protocols import OutboxItem

if TYPE_CHECKING:
    from orchestrator.app import App
    from orchestrator.report.postmortem import Delivery
    from orchestrator.report.postmortem_policy import Overdue

postmortem = typer.Typer(
    help="Postmortems: a draft from the timeline, the edited text stored, checked and approved.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable output")]
Number = Annotated[int, typer.Argument(help="incident number", min=1)]
AsActor = Annotated[
    str | None, typer.Option("--as", help="who is doing this (default: your login name)")
]


class DocFormat(StrEnum):
    MD = "md"
    HTML = "html"


def person(name: str | None) -> Actor:
    login = name or getpass.getuser()
    return Actor(ActorKind.CLI, login, login)


async def _incident(app: App, number: int) -> Incident:
    incident = await app.store.get_incident(number)
    if incident is None:
        raise fail(f"no incident #{number}")
    return incident


def _delivery(item: OutboxItem) -> Delivery:
    from orchestrator.report.postmortem import Delivery  # noqa: PLC0415 - see below

    return Delivery(
        item.action.name,
        item.action.params,
        item.status.value,
        item.attempts,
        item.delivered_at,
        item.last_error,
    )


def _template(app: App, name: str) -> str:
    from orchestrator.playbook.loader import document_template  # noqa: PLC0415 - see below

    found = document_template(app.settings.playbooks_dir, name)
    if found is None:
        raise fail(
            f"no {name} in {app.settings.playbooks_dir / 'templates'}: copy the shipped "
            f"playbooks/templates/{name} there (and adapt it) to draft postmortems"
        )
    return found


@postmortem.command("draft")
def draft(
    ctx: typer.Context,
    number: Number,
    doc_format: Annotated[DocFormat, typer.Option("--format", help="md or html")] = DocFormat.MD,
    out: Annotated[Path | None, typer.Option("--out", help="write to this file")] = None,
) -> None:
    """The postmortem: a fresh draft from the timeline, or the stored one with its generated
    sections (timestamps, timeline, responders, communications, action items) brought up to
    date."""
    # The drafting (templates, the escalation policy, Markdown) is imported by the commands
    # that draft or check, not by every command at start-up.
    from orchestrator.playbook.render import TemplateError  # noqa: PLC0415
    from orchestrator.report.postmortem import postmortem_context  # noqa: PLC0415
    from orchestrator.report.postmortem_doc import render_postmortem  # noqa: PLC0415

    async def go() -> str:
        async with opened_app(ctx) as app:
            incident = await _incident(app, number)
            entries = await app.store.timeline(number)
            sent = await app.store.list_actions(number)
            record = await app.store.get_postmortem(number)
            items = await app.store.list_action_items(number)
            markdown = _template(app, "postmortem.md.j2")
            html = _template(app, "postmortem.html.j2") if doc_format is DocFormat.HTML else None
            context = postmortem_context(
                incident,
                entries,
                [_delivery(item) for item in sent],
                generated_at=app.clock.now(),
                playbook=app.playbooks.get(incident.playbook),
                record=record,
                action_items=items,
            )
        stored = record.markdown if record is not None else None
        try:
            return render_postmortem(markdown, context, stored=stored, html_template=html)
        except TemplateError as err:
            name = f"postmortem.{doc_format.value}.j2"
            raise fail(f"templates/{name} does not render: {err}") from None

    text = run(go())
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    console.print(f"Wrote the postmortem of #{number} to {out}.", highlight=False)


@postmortem.command("import")
def import_postmortem(
    ctx: typer.Context,
    number: Number,
    file: Annotated[Path, typer.Argument(help="the edited Markdown; - for stdin")],
    review: Annotated[
        bool, typer.Option("--review", help="ready for review: status in_review")
    ] = False,
    actor: AsActor = None,
    json: JsonFlag = False,
) -> None:
    """Store the edited postmortem, and add or update action items from its table."""
    from orchestrator.report.postmortem import people_of  # noqa: PLC0415 - see draft
    from orchestrator.report.postmortem_doc import checkable_text  # noqa: PLC0415

    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except OSError as err:
        raise fail(f"{file}: {err.strerror or err}") from None
    try:
        rows = parse_action_items(text)
    except ActionItemsError as err:
        raise fail(f"{file}:{err.line}: {err.reason}") from None

    async def go() -> dict[str, Any]:
        async with opened_app(ctx) as app:
            incident = await _incident(app, number)
            existing = await app.store.list_action_items(number)
            try:
                plan = plan_import(number, rows, existing)
                saved = await app.store.save_postmortem(
                    number,
                    text,
                    person(actor),
                    app.clock.now(),
                    status=PostmortemStatus.IN_REVIEW if review else None,
                    items=[NewActionItem.from_row(row) for row in plan.added],
                    changes=[(item.id, changes) for item, changes in plan.changed],
                )
            except ActionItemsError as err:
                raise fail(f"{file}:{err.line}: {err.reason}") from None
            except FollowUpError as err:
                raise fail(str(err)) from None
            entries = await app.store.timeline(number)
        findings = blame_phrases(checkable_text(text), people_of(incident, entries))
        return {
            "incident": number,
            "status": saved.status.value,
            "added": [row.title for row in plan.added],
            "updated": [item.title for item, _ in plan.changed],
            "blameless_findings": len(findings),
        }

    summary = run(go())
    if json:
        print_json(summary)
        return
    console.print(
        f"Stored the postmortem of #{number} ({summary['status'].replace('_', ' ')}): "
        f"{len(summary['added'])} action item(s) added, {len(summary['updated'])} updated.",
        highlight=False,
    )
    if summary["blameless_findings"]:
        console.print(
            f"{summary['blameless_findings']} blameless-language finding(s): "
            f"see `orchestrator postmortem check {number}`.",
            highlight=False,
            markup=False,
        )


@postmortem.command("check")
def check(
    ctx: typer.Context,
    number: Number,
    file: Annotated[
        Path | None, typer.Option("--file", help="check this file instead of the stored text")
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Blameless-language check of the sections people wrote; exits 1 when anything is found."""
    from orchestrator.report.postmortem import people_of  # noqa: PLC0415 - see draft
    from orchestrator.report.postmortem_doc import checkable_text  # noqa: PLC0415

    async def go() -> list[tuple[int, str, str]]:
        async with opened_app(ctx) as app:
            incident = await _incident(app, number)
            entries = await app.store.timeline(number)
            record = await app.store.get_postmortem(number)
        if file is not None:
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as err:
                raise fail(f"{file}: {err.strerror or err}") from None
        elif record is not None:
            text = record.markdown
        else:
            raise fail(f"incident #{number} has no stored postmortem: import one, or use --file")
        return blame_phrases(checkable_text(text), people_of(incident, entries))

    findings = run(go())
    if json:
        print_json([{"line": n, "phrase": p, "suggestion": s} for n, p, s in findings])
    elif not findings:
        console.print(f"The postmortem of #{number} reads blameless.", highlight=False)
    else:
        table = Table(title=f"Blameless-language findings, #{number}", title_justify="left")
        table.add_column("line", justify="right", no_wrap=True)
        table.add_column("phrase", no_wrap=True)
        table.add_column("instead", min_width=30)
        for line, phrase, suggestion in findings:
            table.add_row(str(line), Text(phrase), Text(suggestion))
        console.print(table)
    if findings:
        raise typer.Exit(1)


@postmortem.command("approve")
def approve(
    ctx: typer.Context,
    number: Number,
    actor: Annotated[str, typer.Option("--as", help="who approves (recorded as evidence)")],
    json: JsonFlag = False,
) -> None:
    """Approve the stored postmortem. The approval covers its text as it is now."""

    async def go() -> None:
        async with opened_app(ctx) as app:
            await _incident(app, number)
            try:
                saved = await app.store.approve_postmortem(number, person(actor), app.clock.now())
            except FollowUpError as err:
                raise fail(str(err)) from None
        if json:
            print_json({key: value for key, value in vars(saved).items() if key != "markdown"})
        else:
            console.print(f"The postmortem of #{number} is approved by {actor}.", highlight=False)

    run(go())


@postmortem.command("overdue")
def overdue(
    ctx: typer.Context,
    days: Annotated[
        int, typer.Option("--days", min=0, help="business days allowed after resolution")
    ] = 5,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="count business days up to this ISO time")
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Incidents whose playbook requires a postmortem (`postmortem.required_when`), resolved
    more than --days business days ago, without an approved postmortem."""
    fixed = _instant(as_of) if as_of else None
    from orchestrator.followups import overdue_postmortems  # noqa: PLC0415 - see draft

    async def go() -> list[Overdue]:
        async with opened_app(ctx) as app:
            try:
                return await overdue_postmortems(
                    app.store, app.playbooks, fixed or app.clock.now(), days
                )
            except ValueError as err:
                raise fail(str(err)) from None

    late = run(go())
    if json:
        print_json(
            [
                {
                    "incident": item.incident.number,
                    "title": item.incident.title,
                    "max_severity": item.incident.max_severity.value,
                    "resolved_at": item.resolved_at,
                    "business_days": item.business_days,
                    "postmortem": item.postmortem.value if item.postmortem else None,
                    "required_when": item.required_when,
                }
                for item in late
            ]
        )
        return
    if not late:
        console.print(f"No postmortem is overdue (more than {days} business days).")
        return
    table = Table(title="Overdue postmortems", title_justify="left")
    for column in ("#", "sev", "title", "resolved (UTC)", "business days", "postmortem", "why"):
        table.add_column(column, no_wrap=column != "title")
    for item in late:
        table.add_row(
            str(item.incident.number),
            item.incident.max_severity.value,
            Text(item.incident.title),
            short(item.resolved_at),
            str(item.business_days),
            item.postmortem.label if item.postmortem else "none",
            Text(item.required_when),
        )
    console.print(table)


def _instant(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"--as-of {text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
