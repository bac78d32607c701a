"""The /incident command grammar, case by case."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.incident.model import Severity
from orchestrator.ingest.slack_commands import Command, CommandError, parse_command


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ack", Command("ack")),
        ("ACK #42", Command("ack", 42)),
        ("acknowledge 42", Command("ack", 42)),
        ("escalate", Command("escalate")),
        ("mitigate", Command("mitigated")),
        ("resolved #7", Command("resolve", 7)),
        ("status", Command("status")),
        ("severity sev2", Command("severity", severity=Severity.SEV2)),
        ("sev #3 SEV1", Command("severity", 3, severity=Severity.SEV1)),
        ("commander <@U123ABC|ana>", Command("commander", user="U123ABC")),
        ("commander #9 <@W99>", Command("commander", 9, user="W99")),
        ("note rolled back  deploy 42", Command("note", text="rolled back  deploy 42")),
        ("note #5 <!channel> hi", Command("note", 5, text="<!channel> hi")),
        (
            "declare SEV2 checkout errors",
            Command("declare", severity=Severity.SEV2, text="checkout errors"),
        ),
        ("declare checkout slow", Command("declare", text="checkout slow")),
        ("postmortem", Command("postmortem")),
        ("postmortem #4", Command("postmortem", 4)),
        (
            "action #4 add a read replica <@U77|ana> due:2026-12-01 type:mitigate",
            Command(
                "action",
                4,
                user="U77",
                text="add a read replica",
                due=dt.date(2026, 12, 1),
                item_type="mitigate",
            ),
        ),
        ("action alert on replica lag", Command("action", text="alert on replica lag")),
        ("pause", Command("pause")),
        ("resume #12", Command("resume", 12)),
        ("ENDEX", Command("endex")),
    ],
)
def test_commands(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Usage"),
        ("help", "Usage"),
        ("reboot", "unknown command 'reboot'"),
        ("severity", "give one of SEV1"),
        ("severity SEV9", "'SEV9' is not one of"),
        ("commander ana", "mention one person"),
        ("commander <@U1> <@U2>", "mention one person"),
        ("note", "write the note"),
        ("note #4", "write the note"),
        ("ack now please", "unexpected 'now please'"),
        ("declare", "give a title"),
        ("declare SEV1", "give a title"),
        ("action", "say what is to be done"),
        ("action fix it due:2026-13-45", "is not a date"),
        ("action fix it type:blame", "type must be one of"),
        ("endex now", "unexpected 'now'"),
    ],
)
def test_mistakes_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse_command(text)
