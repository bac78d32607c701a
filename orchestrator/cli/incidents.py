"""CLI commands that read and change incidents: list, show, timeline, ack, resolve, note, ..."""

from __future__ import annotations

import base64
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import console, fail, opened_app, plain, print_json, run, when
from orchestrator.cli.views import (
    actions_table,
    dead_letters_table,
    incidents_table,
    timeline_table,
)
from orchestrator.incident.events import (
    CommanderAssigned,
    Correction,
    Event,
    NoteAdded,
    SeverityChanged,
    StatusChange,
)
from orchestrator.incident.model import Actor, ActorKind, Incident, Severity, Status
from orchestrator.store.protocols import DeadLetter

if TYPE_CHECKING:
    from orchestrator.app import App
    from orchestrator.incident.engine import Decision

incidents = typer.Typer(help="List and inspect incidents.", no_args_is_help=True)
deadletters = typer.Typer(help="Payloads that could not be read, kept with their raw bytes.")
deliveries = typer.Typer(
    help="Deliveries in the outbox: what was sent, retried or failed.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable output")]
Number = Annotated[int, typer.Argument(help="incident number", min=1)]
AsActor = Annotated[
    str | None, typer.Option("--as", help="who is doing this (default: your login name)")
]


@incidents.command("list")
def list_incidents(
    ctx: typer.Context,
    status: Annotated[list[Status] | None, typer.Option(help="only these statuses")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    json: JsonFlag = False,
) -> None:
    """Incidents, newest first."""

    async def go() -> None:
        async with opened_app(ctx) as app:
            found = await app.store.list_incidents(frozenset(status) if status else None, limit)
        if json:
            print_json(found)
        else:
            console.print(incidents_table(found))

    run(go())


@incidents.command("show")
def show(ctx: typer.Context, number: Number, json: JsonFlag = False) -> None:
    """One incident: state, timestamps, alerts, actions and pending timers."""

    async def go() -> None:
        async with opened_app(ctx) as app:
            incident = await app.store.get_incident(number)
            if incident is None:
                raise fail(f"no incident #{number}")
            alerts = await app.store.list_alerts(number)
            items = await app.store.list_actions(number)
            timers = await app.store.list_timers(number)
        if json:
            print_json({"incident": incident, "alerts": alerts, "actions": items, "timers": timers})
            return
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="bold")
        facts.add_column()
        for label, value in (
            ("title", incident.title),
            ("status", incident.status.value),
            ("severity", f"{incident.severity.value} (highest {incident.max_severity.value})"),
            ("playbook", f"{incident.playbook} @ {incident.playbook_version}"),
            ("group", incident.group_key),
            ("service / team", f"{incident.service or '—'} / {incident.team or '—'}"),
            ("commander", incident.commander or "—"),
            ("escalation policy", _policy_line(incident)),
            ("declared", when(incident.declared_at)),
            ("acknowledged", when(incident.acknowledged_at)),
            ("mitigated", when(incident.mitigated_at)),
            ("resolved", when(incident.resolved_at)),
            ("closed", when(incident.closed_at)),
            ("firing alerts", ", ".join(sorted(incident.firing)) or "none"),
            ("alerts received", str(len(alerts))),
            (
                "pending timers",
                ", ".join(
                    f"{t.kind} at {when(t.due_at)}" for t in timers if t.status.value == "pending"
                )
                or "none",
            ),
        ):
            facts.add_row(label, value)
        console.rule(f"Incident #{incident.number}" + (" [DRILL]" if incident.is_drill else ""))
        console.print(facts)
        console.print(actions_table(items))

    run(go())


def timeline(ctx: typer.Context, number: Number, json: JsonFlag = False) -> None:
    """The incident's append-only timeline, oldest first."""

    async def go() -> None:
        async with opened_app(ctx) as app:
            if await app.store.get_incident(number) is None:
                raise fail(f"no incident #{number}")
            entries = await app.store.timeline(number)
        if json:
            print_json(entries)
        else:
            console.print(timeline_table(number, entries))

    run(go())


def _policy_line(incident: Incident) -> str:
    """The snapshot it escalates by; incidents from before snapshots follow their playbook."""
    if not incident.policy:
        return "its playbook's current policy"
    from orchestrator.incident.policy import EscalationPolicy  # noqa: PLC0415 - start-up time

    return EscalationPolicy.model_validate(incident.policy).describe()


def _actor(name: str | None) -> Actor:
    login = name or getpass.getuser()
    return Actor(ActorKind.CLI, login, login)


def _apply(ctx: typer.Context, number: int, event: Event, done: str, json: bool) -> None:
    _decide(ctx, number, lambda app: app.pipeline.apply(number, event), done, json)


def _decide(
    ctx: typer.Context,
    number: int,
    change: Callable[[App], Awaitable[Decision]],
    done: str,
    json: bool,
) -> None:
    """Makes the change, delivers what it asked for, and says what happened."""
    # Imported where used, like the app itself (cli/common.opened_app): start-up time.
    from orchestrator.incident.engine import TransitionError  # noqa: PLC0415
    from orchestrator.pipeline import IncidentNotFoundError  # noqa: PLC0415

    async def go() -> None:
        async with opened_app(ctx) as app:
            try:
                decision = await change(app)
            except (IncidentNotFoundError, TransitionError) as err:
                raise fail(str(err)) from None
            await app.dispatcher.drain()
        if json:
            print_json({"incident": decision.incident, "actions": decision.actions})
        else:
            console.print(f"Incident #{number} {done}.", highlight=False)
            for action in decision.actions:
                console.print(f"  → {action.name} [{action.key}]", highlight=False)

    run(go())


LIFECYCLE = (
    ("ack", Status.ACKNOWLEDGED, "acknowledged", "Acknowledge: stops escalation."),
    ("mitigate", Status.MITIGATED, "mitigated", "Mark mitigated: user impact has stopped."),
    ("resolve", Status.RESOLVED, "resolved", "Resolve: the incident is over."),
    ("close", Status.CLOSED, "closed", "Close a resolved incident once follow-up is done."),
    ("reopen", Status.TRIGGERED, "reopened", "Reopen a resolved incident."),
    ("decline", Status.DECLINED, "declined", "Decline: not an incident after all."),
    ("cancel", Status.CANCELED, "canceled", "Cancel an incident opened by mistake."),
)


def _lifecycle_command(target: Status, done: str) -> Callable[..., None]:
    def command(
        ctx: typer.Context,
        number: Number,
        reason: Annotated[str, typer.Option("--reason", "-r", help="why")] = "",
        actor: AsActor = None,
        json: JsonFlag = False,
    ) -> None:
        _apply(ctx, number, StatusChange(target, _actor(actor), reason), done, json)

    return command


def register_lifecycle(root: typer.Typer) -> None:
    """One command per lifecycle verb, each recording who did it and why."""
    for name, target, done, help_text in LIFECYCLE:
        root.command(name, help=help_text)(_lifecycle_command(target, done))


def severity(
    ctx: typer.Context,
    number: Number,
    level: Annotated[Severity, typer.Argument(help="SEV1 (worst) … SEV5")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="why")] = "",
    actor: AsActor = None,
    json: JsonFlag = False,
) -> None:
    """Change the incident's severity (the highest ever reached is kept for reporting)."""
    event = SeverityChanged(level, _actor(actor), reason)
    _apply(ctx, number, event, f"is now {level.value}", json)


def note(
    ctx: typer.Context,
    number: Number,
    text: Annotated[str, typer.Argument(help="the note")],
    actor: AsActor = None,
    json: JsonFlag = False,
) -> None:
    """Add a note to the incident's timeline."""
    _apply(ctx, number, NoteAdded(text, _actor(actor)), "noted", json)


def commander(
    ctx: typer.Context,
    number: Number,
    who: Annotated[str, typer.Argument(help="the commander: a name or a Slack user id")],
    actor: AsActor = None,
    json: JsonFlag = False,
) -> None:
    """Assign (or hand over) command of the response."""
    _apply(ctx, number, CommanderAssigned(who, _actor(actor)), f"is commanded by {who}", json)


def correct(
    ctx: typer.Context,
    number: Number,
    seq: Annotated[int, typer.Argument(help="the timeline entry to correct (its seq)")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="why it was wrong")],
    changes: Annotated[
        list[str],
        typer.Option("--set", help="field=value: occurred_at, text or reason; repeatable"),
    ],
    actor: AsActor = None,
    json: JsonFlag = False,
) -> None:
    """Correct a timeline entry. Entries are never edited: a correction entry points at it."""
    parsed: dict[str, str] = {}
    for change in changes:
        field, sep, value = change.partition("=")
        if not sep or not field:
            raise fail(f"--set {change!r}: write field=value")
        parsed[field.strip()] = value.strip()
    event = Correction(seq, reason, parsed, _actor(actor))
    _apply(ctx, number, event, f"entry {seq} corrected", json)


def escalate(
    ctx: typer.Context,
    number: Number,
    reason: Annotated[str, typer.Option("--reason", "-r", help="why")] = "",
    actor: AsActor = None,
    json: JsonFlag = False,
) -> None:
    """Page the next escalation level now instead of when it is due."""
    by = _actor(actor)
    _decide(ctx, number, lambda app: app.pipeline.escalate(number, by, reason), "escalated", json)


@deliveries.command("list")
def list_deliveries(
    ctx: typer.Context,
    incident: Annotated[int | None, typer.Option(help="only this incident")] = None,
    json: JsonFlag = False,
) -> None:
    """Every action the playbooks asked for (pages, messages), with its delivery state."""

    async def go() -> None:
        async with opened_app(ctx) as app:
            items = await app.store.list_actions(incident)
        if json:
            print_json(items)
        else:
            console.print(actions_table(items))

    run(go())


@deadletters.command("show")
def show_dead_letter(
    ctx: typer.Context,
    letter_id: Annotated[int, typer.Argument(help="dead letter id (from `deadletters list`)")],
    raw: Annotated[
        bool, typer.Option("--raw", help="write the original bytes, unchanged, to stdout")
    ] = False,
    json: JsonFlag = False,
) -> None:
    """One dead letter: where it came from, why it was refused, and its original bytes."""

    async def go() -> DeadLetter:
        async with opened_app(ctx) as app:
            letter = await app.store.get_dead_letter(letter_id)
        if letter is None:
            raise fail(f"no dead letter {letter_id}")
        return letter

    letter = run(go())
    if raw:
        sys.stdout.buffer.write(letter.raw)
        sys.stdout.buffer.flush()
        return
    if json:
        payload = plain(letter)
        payload["raw_base64"] = base64.b64encode(letter.raw).decode()
        del payload["raw"]
        print_json(payload)
        return
    console.rule(f"Dead letter {letter.id}")
    console.print(f"origin:   {letter.origin}", highlight=False, markup=False)
    console.print(f"received: {when(letter.received_at)}", highlight=False)
    console.print(f"error:    {letter.error}", highlight=False, markup=False)
    console.print(
        f"bytes:    {len(letter.raw)} (use --raw for the original bytes)", highlight=False
    )
    preview = letter.raw[:2000].decode("utf-8", errors="replace")
    console.print(Text(preview + ("…" if len(letter.raw) > 2000 else "")))


@deadletters.command("list")
def list_dead_letters(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    json: JsonFlag = False,
) -> None:
    """Payloads that could not be read, newest first, with the reason."""

    async def go() -> None:
        async with opened_app(ctx) as app:
            letters = await app.store.list_dead_letters(limit)
        if json:
            print_json(letters)
        else:
            console.print(dead_letters_table(letters))

    run(go())
