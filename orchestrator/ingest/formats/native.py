"""The project's own alert format: its pydantic model, published JSON Schema and normalizer.

CloudEvents reuses `NativeAlert` for its `data`, so both paths share one definition of an alert.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.ingest.alert import (
    Alert,
    AlertStatus,
    SourceFormat,
    labels_fingerprint,
    occurrence_id,
)
from orchestrator.ingest.formats.common import Normalized, Timestamp, validate

SCHEMA_ID = "https://incident-orchestrator.example/schemas/native-alert.json"


class NativeAlert(BaseModel):
    """One alert in the orchestrator's native JSON format."""

    model_config = ConfigDict(
        extra="forbid",
        title="Native alert",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": SCHEMA_ID,
        },
    )

    labels: dict[str, str] = Field(
        min_length=1,
        description="Identifying labels; playbooks match on them. At least one, string values.",
        examples=[{"alertname": "PostgresDown", "service": "orders-db", "severity": "critical"}],
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Free text for people: summary, description, runbook_url, ...",
    )
    status: Literal["firing", "resolved"] = Field(default="firing")
    starts_at: Timestamp | None = Field(
        default=None,
        description="RFC 3339 with offset: when impact began. Defaults to the time we received it.",
    )
    ends_at: Timestamp | None = Field(default=None, description="RFC 3339 with offset.")
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="The sender's id for this alert occurrence; redeliveries must repeat it. "
        "Defaults to a hash of source, fingerprint, status and starts_at.",
    )
    fingerprint: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Identifies the alert across occurrences. Defaults to a hash of the labels.",
    )
    links: dict[str, str] = Field(
        default_factory=dict, description='Named URLs, e.g. {"dashboard": "https://..."}.'
    )


def native_alert_schema() -> dict[str, Any]:
    """The JSON Schema senders and editors can validate native alerts against."""
    return NativeAlert.model_json_schema(mode="validation")


def to_alert(
    native: NativeAlert,
    *,
    source: SourceFormat,
    received_at: dt.datetime,
    alert_id: str | None = None,
    default_starts_at: dt.datetime | None = None,
    extra_annotations: dict[str, str] | None = None,
) -> Alert:
    starts_at = native.starts_at or default_starts_at or received_at
    fingerprint = native.fingerprint or labels_fingerprint(native.labels)
    return Alert(
        source=source,
        id=alert_id
        or native.id
        or occurrence_id(source.value, fingerprint, native.status, starts_at),
        fingerprint=fingerprint,
        status=AlertStatus(native.status),
        labels=native.labels,
        annotations={**native.annotations, **(extra_annotations or {})},
        starts_at=starts_at,
        ends_at=native.ends_at,
        received_at=received_at,
        links=native.links,
    )


def normalize_native(doc: dict[str, Any], *, received_at: dt.datetime) -> Normalized:
    native = validate(NativeAlert, doc)
    return Normalized(
        format=SourceFormat.NATIVE,
        alerts=[to_alert(native, source=SourceFormat.NATIVE, received_at=received_at)],
    )
