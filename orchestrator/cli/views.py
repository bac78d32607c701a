"""Rich tables for incidents, timelines, actions and dead letters, shared by several commands."""

from __future__ import annotations

import datetime as dt
import json

from rich.table import Table
from rich.text import Text

from orchestrator.actions import Action
from orchestrator.cli.common import short, when
from orchestrator.incident.model import Incident, Severity
from orchestrator.store.protocols import DeadLetter, OutboxItem, OutboxStatus
from orchestrator.timeline import TimelineEntry

SEVERITY_STYLE = {
    Severity.SEV1: "bold white on red",
    Severity.SEV2: "bold red",
    Severity.SEV3: "yellow",
    Severity.SEV4: "cyan",
    Severity.SEV5: "dim",
}
STATUS_STYLE = {
    "triggered": "bold red",
    "acknowledged": "yellow",
    "mitigated": "cyan",
    "resolved": "green",
    "closed": "dim green",
}


def incidents_table(incidents: list[Incident], title: str = "Incidents") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("sev", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("title", min_width=16)
    table.add_column("playbook", max_width=18, overflow="ellipsis", no_wrap=True)
    table.add_column("declared (UTC)", no_wrap=True)
    for incident in incidents:
        table.add_row(
            str(incident.number) + (" drill" if incident.is_drill else ""),
            Text(incident.severity.value, style=SEVERITY_STYLE[incident.severity]),
            Text(incident.status.value, style=STATUS_STYLE.get(incident.status.value, "")),
            Text(incident.title),
            incident.playbook,
            short(incident.declared_at),
        )
    return table


def describe(entry: TimelineEntry) -> str:
    """One readable line for an entry's data."""
    data = entry.data
    for key in ("text", "summary", "title", "error", "detail", "reason"):
        if data.get(key):
            detail = str(data[key])
            break
    else:
        detail = ""
    if "from" in data and "to" in data:
        detail = f"{data['from']} → {data['to']}" + (f" ({detail})" if detail else "")
    if "action" in data:
        detail = f"{data['action']} [{data.get('key', '')}]" + (f" {detail}" if detail else "")
    if "timer" in data:
        due = f" due {_short_time(data['due_at'])}" if "due_at" in data else ""
        detail = f"{data['timer']} [{data.get('key', '')}]{due}" + (f" {detail}" if detail else "")
    return detail


def _short_time(iso: object) -> str:
    try:
        return short(dt.datetime.fromisoformat(str(iso)))
    except ValueError:
        return str(iso)


def describe_action(action: Action) -> str:
    """What an action will do, in a line a responder can read."""
    params = action.params
    if action.name == "slack.post":
        first_line = str(params.get("text") or "").split("\n", 1)[0]
        target = params.get("channel") or "incident channel"
        named = f" (template {params['template']})" if params.get("template") else ""
        return f"{target}{named}: {first_line[:100]}"
    if action.name == "slack.open_channel":
        invite = ", ".join(params.get("invite") or []) or "nobody"
        return f"#{params.get('name')}, invite {invite}"
    if action.name == "pagerduty.trigger":
        return f"page {params.get('service')} ({params.get('urgency')} urgency)"
    if action.name == "pagerduty.escalate":
        return f"escalate to level {params.get('level')}"
    if action.name in ("pagerduty.acknowledge", "pagerduty.resolve"):
        return "the incident's pages"
    if action.name == "slack.update_summary":
        incident = params.get("incident") or {}
        return f"pinned summary: {incident.get('status')}, {incident.get('severity')}"
    # The incident snapshot every action carries is context, not what the action does.
    shown = {key: value for key, value in params.items() if key != "incident"}
    return json.dumps(shown, ensure_ascii=False, sort_keys=True) if shown else ""


def timeline_table(number: int, entries: list[TimelineEntry]) -> Table:
    table = Table(title=f"Timeline of incident #{number}", title_justify="left")
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("recorded (UTC)", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("actor", max_width=18, overflow="ellipsis", no_wrap=True)
    table.add_column("detail", min_width=20)
    for entry in entries:
        table.add_row(
            str(entry.seq),
            short(entry.recorded_at),
            entry.kind.value,
            Text(str(entry.actor)),
            Text(describe(entry)),
        )
    return table


def actions_table(items: list[OutboxItem], title: str = "Actions", *, keys: bool = True) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("action", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("tries", justify="right", no_wrap=True)
    if keys:
        table.add_column("idempotency key", max_width=24, overflow="fold")
    table.add_column("what", min_width=20)
    for item in items:
        status_style = {"delivered": "green", "failed": "red"}.get(item.status.value, "yellow")
        what = describe_action(item.action)
        if item.status is not OutboxStatus.DELIVERED and item.last_error:
            what += f"\nlast error: {item.last_error}"
        cells: list[str | Text] = [
            str(item.action.incident_number),
            item.action.name,
            Text(item.status.value, style=status_style),
            str(item.attempts),
        ]
        if keys:
            cells.append(Text(item.action.key))
        table.add_row(*cells, Text(what))
    return table


def dead_letters_table(letters: list[DeadLetter]) -> Table:
    table = Table(title="Dead letters", title_justify="left")
    for column in ("id", "received (UTC)", "origin", "error", "bytes"):
        table.add_column(column, no_wrap=column not in ("error",))
    for letter in letters:
        table.add_row(
            str(letter.id),
            when(letter.received_at),
            Text(letter.origin),
            Text(letter.error),
            str(len(letter.raw)),
        )
    return table
