"""Checks a schema-valid playbook further: every template renders against a sample alert, and
its postmortem policy parses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from orchestrator.playbook.actions import Params, SlackPost
from orchestrator.playbook.conditions import ConditionError, parse_condition
from orchestrator.playbook.context import template_context
from orchestrator.playbook.matchers import MatchType
from orchestrator.playbook.model import Playbook, SeverityRule
from orchestrator.playbook.render import TemplateError, render_text

Loc = tuple[int | str, ...]
SAMPLE_TIME = dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC)


def sample_labels(playbook: Playbook) -> dict[str, str]:
    """Labels an alert this playbook matches would plausibly carry, to render templates with."""
    labels = {"alertname": "ExampleAlert"}
    for name in playbook.group_by:
        if name != "...":
            labels[name] = f"example-{name}"
    if isinstance(playbook.severity, SeverityRule) and playbook.severity.map:
        labels[playbook.severity.from_label] = next(iter(playbook.severity.map))
    for matcher in playbook.matchers:
        if matcher.type is MatchType.EQUAL:
            labels[matcher.name] = matcher.value
    if playbook.tests:
        labels.update(playbook.tests[0].alerts[0].labels)
    return labels


def sample_context(playbook: Playbook, *, with_alert: bool = True) -> dict[str, Any]:
    """What templates see. Without an alert (escalations, commands from people) the labels are
    the incident's group labels and `alert` is empty, exactly as at run time."""
    labels = sample_labels(playbook)
    annotations = {"summary": "Example summary", "description": "Example description"}
    if playbook.tests:
        annotations.update(playbook.tests[0].alerts[0].annotations)
    if not with_alert:
        labels = {name: labels.get(name, "") for name in playbook.group_by if name != "..."}
        annotations = {"summary": annotations["summary"]}
    return template_context(
        labels=labels,
        annotations=annotations,
        alert={}
        if not with_alert
        else {
            "id": "example",
            "fingerprint": "0123456789abcdef",
            "status": "firing",
            "starts_at": SAMPLE_TIME,
            "source": "alertmanager",
            "summary": annotations["summary"],
            "links": {},
        },
        incident={
            "number": 1234,
            "title": "Example incident",
            "severity": "SEV2",
            "max_severity": "SEV2",
            "status": "triggered",
            "declared_at": SAMPLE_TIME,
            "duration": "5m",
            "service": labels.get("service", ""),
            "team": playbook.owner,
            "is_drill": False,
            "channel": "",
        },
        playbook={
            "name": playbook.name,
            "owner": playbook.owner,
            "description": playbook.description,
            "runbook": playbook.runbook or "",
        },
    )


# Phases whose steps run when an alert arrives; all others run without one.
ALERT_PHASES = frozenset({"on_trigger", "on_reopen"})


def templates_of(playbook: Playbook) -> Iterator[tuple[Loc, str, bool, bool]]:
    """(location, template source, is Slack mrkdwn, runs with an alert) for every template."""
    yield ("title",), playbook.title, False, True
    yield ("summary",), playbook.summary, False, True
    for loc, params in _step_params(playbook):
        with_alert = loc[0] in ALERT_PHASES
        for field, mrkdwn in type(params).templates.items():
            value = getattr(params, field)
            if isinstance(value, str):
                yield (*loc, field), value, mrkdwn, with_alert
        if isinstance(params, SlackPost) and params.template is not None:
            named = playbook.templates.get(params.template)
            if named is not None:
                yield (*loc, "template"), named, True, with_alert


def _step_params(playbook: Playbook) -> Iterator[tuple[Loc, Params]]:
    for phase in ("on_trigger", "on_acknowledge", "on_resolve", "on_reopen", "on_ack_timeout"):
        for index, step in enumerate(getattr(playbook, phase) or []):
            yield (phase, index, step.name), step.params
    if playbook.escalation is not None:
        for level_index, level in enumerate(playbook.escalation.levels):
            for index, step in enumerate(level.do):
                yield ("escalation", "levels", level_index, "do", index, step.name), step.params
    if playbook.reminder is not None and "do" in playbook.reminder.model_fields_set:
        for index, step in enumerate(playbook.reminder.do):
            yield ("reminder", "do", index, step.name), step.params


def semantic_problems(playbook: Playbook) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for loc, params in _step_params(playbook):
        named = params.template if isinstance(params, SlackPost) else None
        if named is not None and named not in playbook.templates:
            known = ", ".join(sorted(playbook.templates)) or "none"
            problems.append(((*loc, "template"), f"unknown template {named!r} (known: {known})"))
    contexts = {
        True: sample_context(playbook),
        False: sample_context(playbook, with_alert=False),
    }
    for loc, source, mrkdwn, with_alert in templates_of(playbook):
        try:
            render_text(source, contexts[with_alert], mrkdwn=mrkdwn)
        except TemplateError as err:
            path = ".".join(str(p) for p in loc if not (isinstance(p, str) and "." in p))
            when = "" if with_alert else " (this step runs without an alert)"
            problems.append((loc, f"{path}: template does not render{when}: {err}"))
    if "..." in playbook.group_by and len(playbook.group_by) > 1:
        problems.append((("group_by",), "'...' (all labels) cannot be combined with other labels"))
    if playbook.postmortem is not None:
        try:
            parse_condition(playbook.postmortem.required_when)
        except ConditionError as err:
            problems.append((("postmortem", "required_when"), f"postmortem.required_when: {err}"))
    return problems
