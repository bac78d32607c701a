"""Follow-ups after an incident: which required postmortems are overdue, and the reminder the
service posts in the incident's channel (through the outbox, once a day per incident)."""

from __future__ import annotations

import datetime as dt

from orchestrator.actions import Action
from orchestrator.incident.model import Status
from orchestrator.playbook.conditions import Condition, ConditionError, parse_condition
from orchestrator.playbook.playbookset import PlaybookSet
from orchestrator.report.postmortem_policy import Overdue, overdue_postmortem
from orchestrator.store.sql import SqlStore

REMINDER_ACTION = "slack.post"


def postmortem_conditions(playbooks: PlaybookSet) -> dict[str, Condition]:
    """Each playbook's `postmortem.required_when`, parsed (loading validated them)."""
    parsed: dict[str, Condition] = {}
    for playbook in playbooks:
        if playbook.postmortem is not None:
            try:
                parsed[playbook.name] = parse_condition(playbook.postmortem.required_when)
            except ConditionError as err:
                raise ValueError(
                    f"playbook {playbook.name}: postmortem.required_when: {err}"
                ) from None
    return parsed


async def overdue_postmortems(
    store: SqlStore, playbooks: PlaybookSet, now: dt.datetime, days: int
) -> list[Overdue]:
    conditions = postmortem_conditions(playbooks)
    if not conditions:
        return []
    stored = await store.list_postmortems()
    late: list[Overdue] = []
    # Only what can be overdue is read: ended incidents of playbooks that require one.
    ended = frozenset({Status.RESOLVED, Status.CLOSED})
    async for incident, entries in store.incidents_with_timelines(
        statuses=ended, playbooks=frozenset(conditions)
    ):
        condition = conditions[incident.playbook]
        found = overdue_postmortem(
            incident, entries, condition, stored.get(incident.number), as_of=now, days=days
        )
        if found is not None:
            late.append(found)
    return late


def reminder(late: Overdue, today: dt.date) -> Action:
    """A nudge in the incident channel; keyed by day, so a restart never posts it twice."""
    incident = late.incident
    who = f"<@{incident.commander}> " if incident.commander.startswith(("U", "W")) else ""
    text = (
        f"{who}The postmortem of #{incident.number} is overdue: resolved "
        f"{late.business_days} business days ago, required because {late.required_when}. "
        f"Draft it with `orchestrator postmortem draft {incident.number}`."
    )
    return Action(
        key=f"{incident.number}:postmortem-reminder:{today.isoformat()}",
        name=REMINDER_ACTION,
        params={"text": text},
        incident_number=incident.number,
        is_drill=incident.is_drill,
    )
