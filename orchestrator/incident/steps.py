"""Turns a playbook's action steps into rendered Actions with deterministic idempotency keys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from orchestrator.actions import Action
from orchestrator.incident.model import Incident
from orchestrator.ingest.alert import Alert
from orchestrator.playbook.actions import ActionStep, PagerDutyTrigger, SlackPost
from orchestrator.playbook.context import template_context
from orchestrator.playbook.model import Playbook
from orchestrator.playbook.render import TemplateError, human_duration, render_text


def incident_context(incident: Incident, now: dt.datetime) -> dict[str, Any]:
    return {
        "number": incident.number,
        "title": incident.title,
        "severity": incident.severity.value,
        "max_severity": incident.max_severity.value,
        "status": incident.status.value,
        "declared_at": incident.declared_at,
        "duration": human_duration(now - incident.declared_at, seconds=False),
        "service": incident.service,
        "team": incident.team,
        "is_drill": incident.is_drill,
        "channel": incident.links.get("slack_channel", ""),
    }


def context_for(
    incident: Incident, playbook: Playbook, alert: Alert | None, now: dt.datetime
) -> dict[str, Any]:
    labels = dict(alert.labels) if alert else dict(incident.group_labels)
    annotations = dict(alert.annotations) if alert else {"summary": incident.summary}
    alert_view: dict[str, Any] = {}
    if alert is not None:
        alert_view = {
            "id": alert.id,
            "fingerprint": alert.fingerprint,
            "status": alert.status.value,
            "starts_at": alert.starts_at,
            "source": alert.source.value,
            "summary": alert.summary,
            "links": dict(alert.links),
        }
    return template_context(
        labels=labels,
        annotations=annotations,
        alert=alert_view,
        incident=incident_context(incident, now),
        playbook={
            "name": playbook.name,
            "owner": playbook.owner,
            "description": playbook.description,
            "runbook": playbook.runbook or "",
        },
    )


def incident_facts(
    incident: Incident, playbook: Playbook, context: dict[str, Any]
) -> dict[str, Any]:
    """What every action carries about its incident, as it was when the action was decided:
    handlers build pages, channel topics and summaries from it without reading the store."""
    return {
        "number": incident.number,
        "title": incident.title,
        "status": incident.status.value,
        "severity": incident.severity.value,
        "service": incident.service,
        "team": incident.team,
        "summary": incident.summary,
        "commander": incident.commander,
        "declared_at": incident.declared_at.isoformat(),
        "is_drill": incident.is_drill,
        "playbook": playbook.name,
        "playbook_version": incident.playbook_version,
        "runbook": playbook.runbook or "",
        "labels": dict(context.get("labels", {})),
        # Whom the playbook pages: the Slack handler invites these services' on-call people.
        "pagerduty_services": list(paged_services(playbook)),
    }


# By the playbook object itself (kept alive here, so its id is not reused): a loaded playbook
# never changes, and reading even its version costs a pydantic attribute lookup per action.
_PAGED: dict[int, tuple[Playbook, tuple[str, ...]]] = {}


def paged_services(playbook: Playbook) -> tuple[str, ...]:
    """The PagerDuty services a playbook's trigger steps page; worked out once per playbook,
    since every action asks."""
    cached = _PAGED.get(id(playbook))
    if cached is not None and cached[0] is playbook:
        return cached[1]
    services = tuple(
        sorted(
            {
                step.params.service
                for step in playbook.on_trigger
                if isinstance(step.params, PagerDutyTrigger)
            }
        )
    )
    if len(_PAGED) > 1024:  # playbooks reloaded many times over: start again
        _PAGED.clear()
    _PAGED[id(playbook)] = (playbook, services)
    return services


def render_or_keep(source: str, context: dict[str, Any], *, mrkdwn: bool) -> tuple[str, str]:
    """(text, error). A template that fails at run time must not drop a page: the author's
    unrendered text goes out instead, and the error is recorded beside it."""
    try:
        return render_text(source, context, mrkdwn=mrkdwn), ""
    except TemplateError as err:
        return source, str(err)


def render_steps(
    steps: Sequence[ActionStep],
    *,
    step_id: str,
    incident: Incident,
    playbook: Playbook,
    context: dict[str, Any],
) -> list[Action]:
    """Key `<incident>:<cycle>:<step_id>:<index>`: the same decision always yields the same keys."""
    actions = []
    for index, step in enumerate(steps):
        params = step.params
        rendered: dict[str, Any] = params.model_dump(mode="json")
        errors = []
        for field, mrkdwn in type(params).templates.items():
            value = rendered.get(field)
            if isinstance(value, str):
                rendered[field], error = render_or_keep(value, context, mrkdwn=mrkdwn)
                if error:
                    errors.append(f"{field}: {error}")
        if isinstance(params, SlackPost) and params.template is not None:
            source = playbook.templates.get(params.template, "")
            rendered["text"], error = render_or_keep(source, context, mrkdwn=True)
            if error:
                errors.append(f"template {params.template}: {error}")
        if errors:
            rendered["render_errors"] = errors
        rendered["incident"] = incident_facts(incident, playbook, context)
        actions.append(
            Action(
                key=f"{incident.number}:{incident.cycle}:{step_id}:{index}",
                name=step.name,
                params=rendered,
                incident_number=incident.number,
                is_drill=incident.is_drill,
            )
        )
    return actions
