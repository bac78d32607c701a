"""CloudEvents 1.0 structured-mode JSON events whose `data` is one native alert.

Mapping: the Alert `id` is derived from the event's identity, `sha256(source + "|" + id)`
truncated to 32 hex characters, because CloudEvents makes `source` + `id` unique per event, so a
redelivered event is recognised; an `id` inside `data` is not used. `starts_at` is `data.starts_at`,
else the event's `time`, else our receive time. The event's metadata goes into annotations
(`ce_source`, `ce_type`, `ce_id` and `ce_subject` when present) rather than links, since a source is
a URI-reference and not necessarily something a person can open; these override any annotation of
the same name in `data`, so the payload cannot disguise where it came from.
Binary data (`data_base64`) and non-JSON `datacontenttype` are rejected. Extension attributes are
allowed and ignored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.ingest.alert import SourceFormat
from orchestrator.ingest.formats.common import (
    Normalized,
    NormalizeError,
    Timestamp,
    json_type,
    short_repr,
    validate,
)
from orchestrator.ingest.formats.native import NativeAlert, to_alert

SPEC_VERSION = "1.0"


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    specversion: str
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: Timestamp | None = None
    datacontenttype: str | None = None
    subject: str | None = None
    dataschema: str | None = None


def is_json_media_type(value: str) -> bool:
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type in {"application/json", "text/json"} or media_type.endswith("+json")


def event_alert_id(source: str, event_id: str) -> str:
    return hashlib.sha256(f"{source}|{event_id}".encode()).hexdigest()[:32]


def normalize_cloudevent(doc: dict[str, Any], *, received_at: dt.datetime) -> Normalized:
    # Checked first: another specversion may name its attributes differently.
    version = doc.get("specversion")
    if isinstance(version, str) and version != SPEC_VERSION:
        raise NormalizeError(
            "specversion",
            f"unsupported CloudEvents specversion {short_repr(version)}, expected {SPEC_VERSION!r}",
        )
    event = validate(CloudEvent, doc)
    if event.datacontenttype is not None and not is_json_media_type(event.datacontenttype):
        raise NormalizeError(
            "datacontenttype",
            f"expected a JSON media type such as 'application/json', "
            f"got {short_repr(event.datacontenttype)}",
        )
    if "data_base64" in doc:
        raise NormalizeError(
            "data_base64",
            "binary event data is not supported; send the alert as a JSON object in 'data'",
        )
    if "data" not in doc:
        raise NormalizeError("data", "required field is missing (it holds the native alert)")
    data = doc["data"]
    if not isinstance(data, dict):
        raise NormalizeError("data", f"expected an object (a native alert), got {json_type(data)}")
    native = validate(NativeAlert, data, prefix="data")
    metadata = {"ce_source": event.source, "ce_type": event.type, "ce_id": event.id}
    if event.subject:
        metadata["ce_subject"] = event.subject
    alert = to_alert(
        native,
        source=SourceFormat.CLOUDEVENTS,
        received_at=received_at,
        alert_id=event_alert_id(event.source, event.id),
        default_starts_at=event.time,
        extra_annotations=metadata,
    )
    return Normalized(format=SourceFormat.CLOUDEVENTS, alerts=[alert])
