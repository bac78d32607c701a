"""`orchestrator actions`: the action items postmortems ask for: list, add and close them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import console, fail, opened_app, print_json, run, when
from orchestrator.cli.postmortem import AsActor, JsonFlag, Number, person
from orchestrator.report.action_items import ActionItem, ActionItemStatus, ActionItemType
from orchestrator.store.postmortems import FollowUpError, NewActionItem

actions = typer.Typer(
    help="Action items from postmortems: who does what by when, and the evidence it was done.",
    no_args_is_help=True,
)

STATUS_STYLE = {"open": "yellow", "in_progress": "cyan", "done": "green", "wontfix": "dim"}


def item_json(item: ActionItem, today: dt.date | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {**vars(item), "due": item.due.isoformat() if item.due else None}
    if today is not None:
        data["overdue"] = item.is_overdue(today)
    return data


def items_table(items: list[ActionItem], today: dt.date, title: str = "Action items") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("id", "#", "title", "owner", "due", "type", "status", "link / evidence"):
        table.add_column(column, no_wrap=column not in ("title", "link / evidence"))
    for item in items:
        due = item.due.isoformat() if item.due else "—"
        late = item.is_overdue(today)
        detail = item.link
        if item.status.is_closed:
            detail = f"{item.evidence or '—'} ({item.closed_by}, {when(item.closed_at)})"
        table.add_row(
            str(item.id),
            str(item.incident_number),
            Text(item.title),
            Text(item.owner or "—"),
            Text(due + (" overdue" if late else ""), style="bold red" if late else ""),
            item.type.value,
            Text(item.status.value, style=STATUS_STYLE.get(item.status.value, "")),
            Text(detail),
        )
    return table


@actions.command("list")
def list_items(
    ctx: typer.Context,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="only open items past their due date")
    ] = False,
    open_only: Annotated[bool, typer.Option("--open", help="only open items")] = False,
    incident: Annotated[int | None, typer.Option(help="only this incident's")] = None,
    owner: Annotated[str | None, typer.Option(help="only this owner's")] = None,
    json: JsonFlag = False,
) -> None:
    """Action items, oldest first."""

    async def go() -> tuple[list[ActionItem], dt.date]:
        async with opened_app(ctx) as app:
            today = app.clock.now().astimezone(dt.UTC).date()
            found = await app.store.list_action_items(
                incident, owner, open_only=open_only or overdue
            )
        if overdue:
            found = [item for item in found if item.is_overdue(today)]
        return found, today

    found, today = run(go())
    if json:
        print_json([item_json(item, today) for item in found])
    else:
        console.print(items_table(found, today))


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise fail(f"--due {text!r} is not a date (YYYY-MM-DD)") from None


@actions.command("add")
def add(
    ctx: typer.Context,
    number: Number,
    title: Annotated[str, typer.Option("--title", help="what will be done")],
    owner: Annotated[str, typer.Option("--owner", help="who sees it through")],
    due: Annotated[str, typer.Option("--due", help="YYYY-MM-DD")],
    kind: Annotated[
        ActionItemType, typer.Option("--type", help="prevent, mitigate, detect or process")
    ],
    link: Annotated[str, typer.Option("--link", help="the ticket or change")] = "",
    actor: AsActor = None,
    json: JsonFlag = False,
) -> None:
    """Add an action item to an incident (it also goes on the incident's timeline)."""
    item = NewActionItem(title.strip(), owner.strip(), _date(due), kind, link=link.strip())
    if not item.title:
        raise fail("--title is empty")

    async def go() -> ActionItem:
        async with opened_app(ctx) as app:
            try:
                return await app.store.add_action_item(number, item, person(actor), app.clock.now())
            except FollowUpError as err:
                raise fail(str(err)) from None

    added = run(go())
    if json:
        print_json(item_json(added))
    else:
        console.print(f"Action item {added.id} added to #{number}.", highlight=False)


@actions.command("close")
def close(
    ctx: typer.Context,
    item_id: Annotated[int, typer.Argument(help="the action item's id", min=1)],
    evidence: Annotated[
        str, typer.Option("--evidence", help="a link that shows it done (change, ticket, doc)")
    ],
    wontfix: Annotated[
        bool, typer.Option("--wontfix", help="close it as not going to be done")
    ] = False,
    actor: AsActor = None,
    json: JsonFlag = False,
) -> None:
    """Close an action item, recording who closed it and the evidence on the timeline."""
    if not evidence.strip():
        raise fail("--evidence is empty: link what shows it done (or why it will not be)")
    status = ActionItemStatus.WONTFIX if wontfix else ActionItemStatus.DONE

    async def go() -> ActionItem:
        async with opened_app(ctx) as app:
            try:
                return await app.store.close_action_item(
                    item_id,
                    person(actor),
                    app.clock.now(),
                    evidence=evidence.strip(),
                    status=status,
                )
            except FollowUpError as err:
                raise fail(str(err)) from None

    closed = run(go())
    if json:
        print_json(item_json(closed))
    else:
        console.print(
            f"Action item {closed.id} of #{closed.incident_number} is {closed.status.value}.",
            highlight=False,
        )
