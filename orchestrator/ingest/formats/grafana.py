"""Grafana alerting webhook messages: the Alertmanager shape plus Grafana's values and URLs.

Mapping, beyond what the Alertmanager normalizer does (with `occurrence_id("grafana", ...)`):
- each entry of an alert's `values` (the query/expression results, e.g. `{"B": 97.5}`) becomes the
  annotation `value.<name>`, formatted as JSON would print the number (`97.5`, `3`), so templates
  and people see the measured value without a schema change; `null` values are skipped;
- a non-empty `valueString` becomes the annotation `value_string` (Grafana's one-line rendering);
- an annotation the sender set under the same name wins over these derived ones;
- links: `dashboard`, `panel`, `silence`, `generator`, `image` from the per-alert URLs and `grafana`
  from `externalURL`, each only when non-empty.
Top-level `title`, `state` and `message` describe the whole group and are not copied per alert.
Grafana sends `version: "1"`, so unlike Alertmanager the version is not checked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from orchestrator.ingest.alert import SourceFormat
from orchestrator.ingest.formats.alertmanager import WebhookAlert, WebhookMessage, webhook_alert
from orchestrator.ingest.formats.common import Normalized, validate

# Top-level keys Grafana sends and Alertmanager does not; detection keys off them.
GRAFANA_TOP_KEYS = frozenset({"orgId", "title", "state", "message"})
GRAFANA_ALERT_KEYS = frozenset(
    {"values", "valueString", "dashboardURL", "panelURL", "silenceURL", "imageURL"}
)


class GrafanaAlert(WebhookAlert):
    values: dict[str, float | None] | None = None
    value_string: str = Field(default="", alias="valueString")
    dashboard_url: str = Field(default="", alias="dashboardURL")
    panel_url: str = Field(default="", alias="panelURL")
    silence_url: str = Field(default="", alias="silenceURL")
    image_url: str = Field(default="", alias="imageURL")


class GrafanaMessage(WebhookMessage[GrafanaAlert]):
    version: str = "1"
    org_id: int | None = Field(default=None, alias="orgId")
    title: str | None = None
    state: str | None = None
    message: str | None = None


def format_value(value: float) -> str:
    # Grafana serializes every value as a float; `3.0` reads better as `3`, as JSON would print it.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _annotations(item: GrafanaAlert) -> dict[str, str]:
    derived = {
        f"value.{name}": format_value(value)
        for name, value in (item.values or {}).items()
        if value is not None
    }
    if item.value_string:
        derived["value_string"] = item.value_string
    return {**derived, **item.annotations}


def normalize_grafana(doc: dict[str, Any], *, received_at: dt.datetime) -> Normalized:
    message = validate(GrafanaMessage, doc)
    alerts = [
        webhook_alert(
            item,
            source=SourceFormat.GRAFANA,
            received_at=received_at,
            annotations=_annotations(item),
            links={
                "dashboard": item.dashboard_url,
                "panel": item.panel_url,
                "silence": item.silence_url,
                "generator": item.generator_url,
                "image": item.image_url,
                "grafana": message.external_url,
            },
        )
        for item in message.alerts
    ]
    return Normalized(
        format=SourceFormat.GRAFANA,
        alerts=alerts,
        truncated=message.truncated_alerts,
        group_key=message.group_key,
    )
