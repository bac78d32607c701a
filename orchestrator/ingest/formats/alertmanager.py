"""Alertmanager webhook (version "4") messages: every alert in `alerts[]` becomes an Alert.

Mapping: `id` is `occurrence_id("alertmanager", fingerprint, status, startsAt)`, so a resent group
repeats its ids and a resolve gets a new one. A missing or empty `fingerprint` falls back to
`labels_fingerprint(labels)`. Go's zero time `0001-01-01T00:00:00Z`, which Alertmanager sends as
`endsAt` while an alert is firing, becomes `ends_at=None`; any other `endsAt` is kept as sent (for a
firing alert it is the sender's expiry estimate, not an end). Links: `generator` (generatorURL) and
`alertmanager` (externalURL) when non-empty. Unknown top-level and per-alert keys are ignored, as
Alertmanager adds fields over time.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from orchestrator.ingest.alert import (
    Alert,
    AlertStatus,
    SourceFormat,
    labels_fingerprint,
    occurrence_id,
)
from orchestrator.ingest.formats.common import (
    Normalized,
    NormalizeError,
    Timestamp,
    parse_rfc3339,
    short_repr,
    validate,
)

SUPPORTED_VERSION = "4"
GO_ZERO_TIME = dt.datetime(1, 1, 1, tzinfo=dt.UTC)


def _ends_at(value: object) -> dt.datetime | None:
    if value is None:
        return None
    parsed = parse_rfc3339(value)
    return None if parsed == GO_ZERO_TIME else parsed


A = TypeVar("A", bound="WebhookAlert")
EndsAt = Annotated[dt.datetime | None, BeforeValidator(_ends_at)]


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: Timestamp = Field(alias="startsAt")
    ends_at: EndsAt = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(default="", max_length=256)


class WebhookMessage(BaseModel, Generic[A]):
    """The Alertmanager webhook envelope; Grafana sends the same with its own alert type."""

    model_config = ConfigDict(extra="ignore")

    version: str
    group_key: str | None = Field(default=None, alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    status: Literal["firing", "resolved"] | None = None
    receiver: str | None = None
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[A] = Field(min_length=1)


def webhook_alert(
    item: WebhookAlert,
    *,
    source: SourceFormat,
    received_at: dt.datetime,
    annotations: dict[str, str],
    links: dict[str, str],
) -> Alert:
    """The Alert for one element of an Alertmanager-shaped `alerts[]`."""
    fingerprint = item.fingerprint or labels_fingerprint(item.labels)
    return Alert(
        source=source,
        id=occurrence_id(source.value, fingerprint, item.status, item.starts_at),
        fingerprint=fingerprint,
        status=AlertStatus(item.status),
        labels=item.labels,
        annotations=annotations,
        starts_at=item.starts_at,
        ends_at=item.ends_at,
        received_at=received_at,
        links={name: url for name, url in links.items() if url},
    )


def normalize_alertmanager(doc: dict[str, Any], *, received_at: dt.datetime) -> Normalized:
    # A different version may be shaped differently: say so rather than report a confusing field.
    version = doc.get("version")
    if isinstance(version, str) and version != SUPPORTED_VERSION:
        raise NormalizeError(
            "version",
            f"unsupported Alertmanager webhook version {short_repr(version)}, "
            f"expected {SUPPORTED_VERSION!r}",
        )
    message = validate(WebhookMessage[WebhookAlert], doc)
    alerts = [
        webhook_alert(
            item,
            source=SourceFormat.ALERTMANAGER,
            received_at=received_at,
            annotations=item.annotations,
            links={"generator": item.generator_url, "alertmanager": message.external_url},
        )
        for item in message.alerts
    ]
    return Normalized(
        format=SourceFormat.ALERTMANAGER,
        alerts=alerts,
        truncated=message.truncated_alerts,
        group_key=message.group_key,
    )
