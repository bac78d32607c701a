"""The normalized Alert every source format becomes; the unit the rest of the flow works on."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class SourceFormat(StrEnum):
    NATIVE = "native"
    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    CLOUDEVENTS = "cloudevents"


class Alert(BaseModel):
    """One alert, whatever it arrived as.

    `id` is stable across redeliveries of the same message (the source's id, or a hash of what
    identifies this alert occurrence), so a replayed Kafka message records nothing twice.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: SourceFormat
    id: str = Field(min_length=1, max_length=256)
    fingerprint: str = Field(min_length=1, max_length=256)
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    received_at: AwareDatetime
    links: dict[str, str] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def summary(self) -> str:
        return (
            self.annotations.get("summary")
            or self.annotations.get("description")
            or self.labels.get("alertname", "")
        )


def labels_fingerprint(labels: dict[str, str]) -> str:
    """A stable fingerprint of a label set, for sources that do not send their own."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def occurrence_id(source: str, fingerprint: str, status: str, starts_at: dt.datetime) -> str:
    """Identifies one state of one alert occurrence: resends are the same, a resolve is new."""
    text = f"{source}|{fingerprint}|{status}|{starts_at.astimezone(dt.UTC).isoformat()}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]
