"""Grouping: does an alert join an open incident, reopen a resolved one, or open a new one?"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum

from orchestrator.incident.model import Incident, Status
from orchestrator.ingest.alert import Alert, AlertStatus
from orchestrator.playbook.model import Playbook


class Route(StrEnum):
    JOIN = "join"  # record on the open (or just resolved) incident
    REOPEN = "reopen"  # a recurrence within the reopen window
    OPEN = "open"  # a new incident
    ORPHAN = "orphan"  # a resolved alert with nothing to resolve


def group_labels(playbook: Playbook, labels: dict[str, str]) -> dict[str, str]:
    if "..." in playbook.group_by:
        return dict(sorted(labels.items()))
    return {name: labels.get(name, "") for name in playbook.group_by}


def group_key(playbook: Playbook, labels: dict[str, str], drill_id: str | None = None) -> str:
    """Readable and unambiguous: `playbook{label="value",...}` with JSON-quoted values.

    A drill's incidents group apart, behind `drill:<id>:`: a drill alert never joins a real
    incident, nor a real alert a drill's."""
    pairs = ",".join(
        f"{name}={json.dumps(value, ensure_ascii=False)}"
        for name, value in group_labels(playbook, labels).items()
    )
    key = f"{playbook.name}{{{pairs}}}"
    return f"drill:{drill_id}:{key}" if drill_id else key


def route(latest: Incident | None, alert: Alert, playbook: Playbook, now: dt.datetime) -> Route:
    firing = alert.status is AlertStatus.FIRING
    if latest is not None and latest.status.is_open:
        return Route.JOIN
    if latest is not None and latest.status is Status.RESOLVED:
        if not firing:
            return Route.JOIN  # a late resolve for an incident already resolved: record it
        window = playbook.reopen_window
        resolved_at = latest.resolved_at
        if window is not None and resolved_at is not None and now - resolved_at <= window:
            return Route.REOPEN
    return Route.OPEN if firing else Route.ORPHAN
