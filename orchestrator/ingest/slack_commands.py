"""The `/incident` slash command's grammar: text in, a Command out, or a usage error that
tells the responder exactly what was wrong. Pure: no Slack calls, no store."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from orchestrator.incident.model import Severity

USAGE = """\
`/incident ack|escalate|mitigated|resolve [#N]`
`/incident severity [#N] SEV1..SEV5`
`/incident commander [#N] @user`
`/incident note [#N] <text>`
`/incident status [#N]`
`/incident postmortem [#N]`
`/incident action [#N] <what to do> [@owner] [due:YYYY-MM-DD] [type:prevent|detect|...]`
`/incident declare [SEV1..SEV5] <title>`
`/incident pause|resume|endex [#N]` (a drill: pause, resume or end the exercise)
In an incident channel the number can be left out."""

VERBS = frozenset(
    {
        "ack",
        "escalate",
        "mitigated",
        "resolve",
        "severity",
        "commander",
        "note",
        "status",
        "postmortem",
        "action",
        # A drill's facilitator, in the drill's channel: pause, resume or end the exercise.
        "pause",
        "resume",
        "endex",
    }
)
ITEM_TYPES = ("prevent", "mitigate", "detect", "process")
_DUE = re.compile(r"^due:(\d{4}-\d{2}-\d{2})$")
_TYPE = re.compile(r"^type:([a-z]+)$")
ALIASES = {"acknowledge": "ack", "mitigate": "mitigated", "resolved": "resolve", "sev": "severity"}
# Slack escapes a mentioned user as <@U123> or <@U123|name> when the command asks it to.
_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_NUMBER = re.compile(r"^#?(\d{1,9})$")


class CommandError(ValueError):
    """The text is not a command we understand; the message says why and shows the usage."""


@dataclass(frozen=True)
class Command:
    verb: str
    incident: int | None = None  # None: the incident of the channel it was typed in
    severity: Severity | None = None
    user: str = ""  # a Slack user id: the commander, or an action item's owner
    text: str = ""  # a note, a declared incident's title, an action item's title
    due: dt.date | None = None  # an action item's
    item_type: str = "prevent"


def parse_command(text: str) -> Command:
    words = text.split()
    if not words or words[0].lower() == "help":
        raise CommandError(f"Usage:\n{USAGE}")
    verb = ALIASES.get(words[0].lower(), words[0].lower())
    rest = words[1:]
    if verb == "declare":
        return _declare(rest)
    if verb not in VERBS:
        raise CommandError(f"unknown command {words[0]!r}. Usage:\n{USAGE}")
    number = None
    if rest and (found := _NUMBER.match(rest[0])):
        number, rest = int(found.group(1)), rest[1:]
    if verb == "severity":
        return Command(verb, number, severity=_severity(rest))
    if verb == "commander":
        if len(rest) != 1 or not (user := _USER.match(rest[0])):
            raise CommandError("commander: mention one person, e.g. `/incident commander @ana`")
        return Command(verb, number, user=user.group(1))
    if verb == "action":
        return _action(rest, number)
    if verb == "note":
        note = _after_number(text, number)
        if not note:
            raise CommandError("note: write the note after the command")
        return Command(verb, number, text=note)
    if rest:
        raise CommandError(f"{verb}: unexpected {' '.join(rest)!r}. Usage:\n{USAGE}")
    return Command(verb, number)


def _action(words: list[str], number: int | None) -> Command:
    """`<title words> [@owner] [due:YYYY-MM-DD] [type:…]`, the options in any order."""
    title, owner, due, kind = [], "", None, "prevent"
    for word in words:
        if user := _USER.match(word):
            owner = user.group(1)
        elif found := _DUE.match(word):
            try:
                due = dt.date.fromisoformat(found.group(1))
            except ValueError:
                raise CommandError(f"action: {word!r} is not a date") from None
        elif found := _TYPE.match(word):
            if found.group(1) not in ITEM_TYPES:
                raise CommandError(f"action: type must be one of {', '.join(ITEM_TYPES)}")
            kind = found.group(1)
        else:
            title.append(word)
    if not title:
        raise CommandError("action: say what is to be done, e.g. `/incident action add a replica`")
    return Command("action", number, user=owner, text=" ".join(title), due=due, item_type=kind)


def _severity(words: list[str]) -> Severity:
    choices = ", ".join(s.value for s in Severity)
    if len(words) != 1:
        raise CommandError(f"severity: give one of {choices}")
    try:
        return Severity(words[0].upper())
    except ValueError:
        raise CommandError(f"severity: {words[0]!r} is not one of {choices}") from None


def _declare(words: list[str]) -> Command:
    severity = None
    if words:
        try:
            severity = Severity(words[0].upper())
            words = words[1:]
        except ValueError:
            severity = None
    title = " ".join(words).strip()
    if not title:
        raise CommandError("declare: give a title, e.g. `/incident declare SEV2 checkout errors`")
    return Command("declare", severity=severity, text=title)


def _after_number(text: str, number: int | None) -> str:
    """The note exactly as typed (spacing kept), after the verb and the optional number."""
    rest = text.strip().split(maxsplit=1)[1] if len(text.split()) > 1 else ""
    if number is not None:
        rest = rest.split(maxsplit=1)[1] if len(rest.split()) > 1 else ""
    return rest.strip()
