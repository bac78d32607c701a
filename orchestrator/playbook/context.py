"""What a playbook template can see: alert labels and annotations, the incident, the playbook."""

from __future__ import annotations

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
