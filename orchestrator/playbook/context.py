"""What a playbook template can see: alert labels and annotations, the incident, the playbook."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any


class Labels(dict[str, str]):
    """A label map where an absent label reads as "", as in Alertmanager matching."""

    def __missing__(self, key: str) -> str:
        return ""


def template_context(
    *,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    alert: Mapping[str, Any],
    incident: Mapping[str, Any],
    playbook: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "labels": Labels(labels),
        "annotations": Labels(annotations),
        "alert": dict(alert),
        "incident": dict(incident),
        "playbook": dict(playbook),
    }


def human_duration(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts)
