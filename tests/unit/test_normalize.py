"""Ingest normalizers: every source format becomes Alerts, and every bad payload a precise error."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.ingest.alert import AlertStatus, SourceFormat, labels_fingerprint, occurrence_id
from orchestrator.ingest.normalize import (
    MAX_PAYLOAD_BYTES,
    Normalized,
    NormalizeError,
    decode_payload,
    detect_format,
    native_alert_schema,
    normalize,
    split_stream,
)

UTC = dt.UTC
RECEIVED = dt.datetime(2026, 11, 25, 14, 10, 3, tzinfo=UTC)
LATER = dt.datetime(2026, 11, 25, 14, 15, 3, tzinfo=UTC)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

ZERO_TIME = "0001-01-01T00:00:00Z"
AM_URL = "http://alertmanager.example:9093"


def encode(doc: object) -> bytes:
    return json.dumps(doc).encode()


def am_alert(instance: str, *, status: str = "firing", **overrides: Any) -> dict[str, Any]:
    labels = {
        "alertname": "ErrorBudgetBurn",
        "severity": "critical",
        "service": "checkout-api",
        "cluster": "eu-west-1",
        "env": "prod",
        "team": "team-payments",
        "instance": instance,
        "job": "checkout-api",
        "slo": "availability",
        "window": "1h",
    }
    alert: dict[str, Any] = {
        "status": status,
        "labels": labels,
        "annotations": {
            "summary": "checkout-api is burning its error budget",
            "description": f"5xx ratio on {instance} is 2.1%",
            "runbook_url": "https://runbooks.example/error-budget-burn",
        },
        "startsAt": "2026-11-25T14:06:30.004123456Z",
        "endsAt": ZERO_TIME if status == "firing" else "2026-11-25T14:24:30.004Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up&g0.tab=1",
        "fingerprint": hashlib.sha256(instance.encode()).hexdigest()[:16],
    }
    alert.update(overrides)
    return alert


def am_message(*alerts: dict[str, Any], truncated: int = 0) -> dict[str, Any]:
    return {
        "receiver": "incident-orchestrator",
        "status": "firing",
        "alerts": list(alerts),
        "groupLabels": {"alertname": "ErrorBudgetBurn", "service": "checkout-api"},
        "commonLabels": {"alertname": "ErrorBudgetBurn", "service": "checkout-api"},
        "commonAnnotations": {},
        "externalURL": AM_URL,
        "version": "4",
        "groupKey": '{}/{env="prod"}:{alertname="ErrorBudgetBurn", service="checkout-api"}',
        "truncatedAlerts": truncated,
    }


def grafana_message(**alert_overrides: Any) -> dict[str, Any]:
    alert = {
        "status": "firing",
        "labels": {"alertname": "HighLatencyP99", "service": "search-api", "severity": "warning"},
        "annotations": {"summary": "search-api p99 above 800ms"},
        "startsAt": "2026-11-25T14:05:00Z",
        "endsAt": ZERO_TIME,
        "generatorURL": "https://grafana.example/alerting/grafana/abc/view",
        "fingerprint": "5c1a4f6e9b2d7a30",
        "silenceURL": "https://grafana.example/alerting/silence/new",
        "dashboardURL": "https://grafana.example/d/search-slo",
        "panelURL": "https://grafana.example/d/search-slo?viewPanel=4",
        "imageURL": "",
        "values": {"A": 1.243, "B": 1.0, "C": None},
        "valueString": "[ var='A' value=1.243 ], [ var='B' value=1 ]",
    }
    alert.update(alert_overrides)
    return {
        "receiver": "incident-orchestrator",
        "status": "firing",
        "orgId": 1,
        "alerts": [alert],
        "groupLabels": {"alertname": "HighLatencyP99"},
        "commonLabels": {"alertname": "HighLatencyP99"},
        "commonAnnotations": {},
        "externalURL": "https://grafana.example/",
        "version": "1",
        "groupKey": '{}/{__grafana_receiver__="orchestrator"}:{alertname="HighLatencyP99"}',
        "truncatedAlerts": 0,
        "title": "[FIRING:1] HighLatencyP99",
        "state": "alerting",
        "message": "**Firing**",
    }


def native_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "labels": {"alertname": "PostgresDown", "service": "orders-db", "env": "prod"},
    }
    doc.update(overrides)
    return doc


def cloudevent(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "b8f2c3d4-6a1e-4f7b-9c2d-3e5f7a9b1c0d",
        "source": "//monitoring.example/synthetics/checkout",
        "type": "com.example.monitoring.alert.v1",
        "time": "2026-11-25T14:06:41Z",
        "datacontenttype": "application/json",
        "data": native_doc(),
    }
    event.update(overrides)
    return event


# --- Alertmanager ---------------------------------------------------------------------------


def test_alertmanager_every_alert_in_the_message_becomes_an_alert() -> None:
    message = am_message(
        am_alert("checkout-api-0:8080"),
        am_alert("checkout-api-1:8080", status="resolved"),
        am_alert("checkout-api-2:8080"),
        truncated=2,
    )

    result = normalize(encode(message), received_at=RECEIVED)

    assert result.format is SourceFormat.ALERTMANAGER
    assert result.truncated == 2
    assert result.group_key == message["groupKey"]
    assert [a.labels["instance"] for a in result.alerts] == [
        "checkout-api-0:8080",
        "checkout-api-1:8080",
        "checkout-api-2:8080",
    ]
    assert [a.status for a in result.alerts] == [
        AlertStatus.FIRING,
        AlertStatus.RESOLVED,
        AlertStatus.FIRING,
    ]
    assert len({a.id for a in result.alerts}) == 3
    first = result.alerts[0]
    assert first.source is SourceFormat.ALERTMANAGER
    assert first.fingerprint == message["alerts"][0]["fingerprint"]
    assert first.starts_at == dt.datetime(2026, 11, 25, 14, 6, 30, 4123, tzinfo=UTC)
    assert first.received_at == RECEIVED
    assert first.annotations["runbook_url"] == "https://runbooks.example/error-budget-burn"
    assert first.links == {
        "generator": "http://prometheus.example:9090/graph?g0.expr=up&g0.tab=1",
        "alertmanager": AM_URL,
    }
    assert first.id == occurrence_id("alertmanager", first.fingerprint, "firing", first.starts_at)


def test_alertmanager_zero_ends_at_means_none_and_a_real_one_is_kept() -> None:
    message = am_message(
        am_alert("checkout-api-0:8080"), am_alert("checkout-api-1:8080", status="resolved")
    )

    firing, resolved = normalize(encode(message), received_at=RECEIVED).alerts

    assert firing.ends_at is None
    assert resolved.ends_at == dt.datetime(2026, 11, 25, 14, 24, 30, 4000, tzinfo=UTC)


def test_alertmanager_resend_gives_the_same_ids() -> None:
    raw = encode(am_message(am_alert("checkout-api-0:8080"), am_alert("checkout-api-1:8080")))

    first = normalize(raw, received_at=RECEIVED)
    again = normalize(raw, received_at=LATER)

    assert [a.id for a in first.alerts] == [a.id for a in again.alerts]
    assert again.alerts[0].received_at == LATER


def test_alertmanager_resolve_of_the_same_alert_gets_a_new_id() -> None:
    firing = normalize(encode(am_message(am_alert("a:1"))), received_at=RECEIVED).alerts[0]
    resolved_msg = am_message(am_alert("a:1", status="resolved"))
    resolved = normalize(encode(resolved_msg), received_at=LATER).alerts[0]

    assert resolved.fingerprint == firing.fingerprint
    assert resolved.id != firing.id


def test_alertmanager_missing_fingerprint_and_empty_urls() -> None:
    alert = am_alert("a:1", generatorURL="")
    del alert["fingerprint"]
    message = am_message(alert)
    message["externalURL"] = ""
    del message["groupKey"]

    result = normalize(encode(message), received_at=RECEIVED)

    assert result.alerts[0].fingerprint == labels_fingerprint(alert["labels"])
    assert result.alerts[0].links == {}
    assert result.group_key is None


def test_alertmanager_keeps_offsets_and_accepts_lowercase_separators() -> None:
    alert = am_alert("a:1", startsAt="2026-11-25t15:06:30+01:00", endsAt="2026-11-25T15:10:00z")

    result = normalize(encode(am_message(alert)), received_at=RECEIVED).alerts[0]

    assert result.starts_at == dt.datetime(2026, 11, 25, 14, 6, 30, tzinfo=UTC)
    assert result.starts_at.utcoffset() == dt.timedelta(hours=1)
    assert result.ends_at == dt.datetime(2026, 11, 25, 15, 10, tzinfo=UTC)


# --- Grafana --------------------------------------------------------------------------------


def test_grafana_values_and_links() -> None:
    result = normalize(encode(grafana_message()), received_at=RECEIVED)

    assert result.format is SourceFormat.GRAFANA
    alert = result.alerts[0]
    assert alert.source is SourceFormat.GRAFANA
    assert alert.annotations == {
        "summary": "search-api p99 above 800ms",
        "value.A": "1.243",
        "value.B": "1",
        "value_string": "[ var='A' value=1.243 ], [ var='B' value=1 ]",
    }
    assert alert.links == {
        "dashboard": "https://grafana.example/d/search-slo",
        "panel": "https://grafana.example/d/search-slo?viewPanel=4",
        "silence": "https://grafana.example/alerting/silence/new",
        "generator": "https://grafana.example/alerting/grafana/abc/view",
        "grafana": "https://grafana.example/",
    }
    assert alert.ends_at is None
    assert alert.id == occurrence_id("grafana", "5c1a4f6e9b2d7a30", "firing", alert.starts_at)
    assert result.group_key is not None


def test_grafana_sender_annotation_wins_over_derived_value() -> None:
    message = grafana_message(annotations={"value.A": "1.2s"}, values={"A": 1.243}, valueString="")

    alert = normalize(encode(message), received_at=RECEIVED).alerts[0]

    assert alert.annotations == {"value.A": "1.2s"}


def test_grafana_without_values() -> None:
    message = grafana_message(values=None)
    del message["alerts"][0]["valueString"]

    alert = normalize(encode(message), received_at=RECEIVED).alerts[0]

    assert alert.annotations == {"summary": "search-api p99 above 800ms"}


# --- CloudEvents ----------------------------------------------------------------------------


def test_cloudevent_with_native_data() -> None:
    event = cloudevent(subject="checkout-api/availability")

    result = normalize(encode(event), received_at=RECEIVED)

    assert result.format is SourceFormat.CLOUDEVENTS
    assert result.truncated == 0
    assert result.group_key is None
    alert = result.alerts[0]
    expected_id = hashlib.sha256(f"{event['source']}|{event['id']}".encode()).hexdigest()[:32]
    assert alert.id == expected_id
    assert alert.source is SourceFormat.CLOUDEVENTS
    assert alert.labels == event["data"]["labels"]
    assert alert.fingerprint == labels_fingerprint(event["data"]["labels"])
    assert alert.starts_at == dt.datetime(2026, 11, 25, 14, 6, 41, tzinfo=UTC)
    assert alert.annotations == {
        "ce_source": event["source"],
        "ce_type": event["type"],
        "ce_id": event["id"],
        "ce_subject": "checkout-api/availability",
    }


def test_cloudevent_redelivery_is_recognised_and_a_new_event_is_not() -> None:
    first = normalize(encode(cloudevent()), received_at=RECEIVED).alerts[0]
    again = normalize(encode(cloudevent()), received_at=LATER).alerts[0]
    other = normalize(encode(cloudevent(id="another-event")), received_at=LATER).alerts[0]
    other_source = normalize(encode(cloudevent(source="/elsewhere")), received_at=LATER).alerts[0]

    assert again.id == first.id
    assert len({first.id, other.id, other_source.id}) == 3


def test_cloudevent_starts_at_prefers_data_then_time_then_received() -> None:
    with_data_start = cloudevent(data=native_doc(starts_at="2026-11-25T14:06:30Z"))
    without_time = cloudevent()
    del without_time["time"]

    assert normalize(encode(with_data_start), received_at=RECEIVED).alerts[
        0
    ].starts_at == dt.datetime(2026, 11, 25, 14, 6, 30, tzinfo=UTC)
    assert normalize(encode(without_time), received_at=RECEIVED).alerts[0].starts_at == RECEIVED


def test_cloudevent_metadata_overrides_data_annotations() -> None:
    event = cloudevent(data=native_doc(annotations={"ce_source": "forged", "summary": "s"}))

    alert = normalize(encode(event), received_at=RECEIVED).alerts[0]

    assert alert.annotations["ce_source"] == event["source"]
    assert alert.annotations["summary"] == "s"


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/cloudevents+json"],
)
def test_cloudevent_json_content_types_are_accepted(content_type: str) -> None:
    result = normalize(encode(cloudevent(datacontenttype=content_type)), received_at=RECEIVED)

    assert len(result.alerts) == 1


# --- native ---------------------------------------------------------------------------------


def test_native_minimal_gets_defaults() -> None:
    doc = native_doc()

    result = normalize(encode(doc), received_at=RECEIVED)

    assert result == Normalized(format=SourceFormat.NATIVE, alerts=result.alerts)
    alert = result.alerts[0]
    fingerprint = labels_fingerprint(doc["labels"])
    assert alert.source is SourceFormat.NATIVE
    assert alert.status is AlertStatus.FIRING
    assert alert.fingerprint == fingerprint
    assert alert.starts_at == RECEIVED
    assert alert.ends_at is None
    assert alert.id == occurrence_id("native", fingerprint, "firing", RECEIVED)
    assert alert.annotations == {}
    assert alert.links == {}


def test_native_full() -> None:
    doc = native_doc(
        annotations={"summary": "orders-db down", "description": "<!channel> {{ 7*7 }}"},
        status="resolved",
        starts_at="2026-11-25T16:08:40+02:00",
        ends_at="2026-11-25T14:30:15.5Z",
        id="healthcheck/orders-db/1",
        fingerprint="orders-db-primary",
        links={"dashboard": "https://grafana.example/d/postgres"},
    )

    alert = normalize(encode(doc), received_at=RECEIVED).alerts[0]

    assert alert.id == "healthcheck/orders-db/1"
    assert alert.fingerprint == "orders-db-primary"
    assert alert.status is AlertStatus.RESOLVED
    assert alert.starts_at == dt.datetime(2026, 11, 25, 14, 8, 40, tzinfo=UTC)
    assert alert.ends_at == dt.datetime(2026, 11, 25, 14, 30, 15, 500000, tzinfo=UTC)
    assert alert.annotations["description"] == "<!channel> {{ 7*7 }}"
    assert alert.links == {"dashboard": "https://grafana.example/d/postgres"}


def test_native_schema_is_published_and_strict() -> None:
    schema = native_alert_schema()

    assert schema["type"] == "object"
    assert schema["required"] == ["labels"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["starts_at"]["anyOf"][0] == {
        "type": "string",
        "format": "date-time",
    }
    example = json.loads((EXAMPLES / "native-alert.json").read_text())
    assert set(example) <= set(schema["properties"])
    json.dumps(schema)


# --- detection and dispatch -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (native_doc(), SourceFormat.NATIVE),
        (am_message(am_alert("a:1")), SourceFormat.ALERTMANAGER),
        (grafana_message(), SourceFormat.GRAFANA),
        ({"alerts": [], "version": "4", "orgId": 1}, SourceFormat.GRAFANA),
        ({"alerts": [{"dashboardURL": "x"}], "version": "1"}, SourceFormat.GRAFANA),
        (cloudevent(), SourceFormat.CLOUDEVENTS),
        ({"specversion": "0.3", "labels": {}}, SourceFormat.CLOUDEVENTS),
        ({"labels": {}, "alerts": "x", "version": "4"}, SourceFormat.ALERTMANAGER),
    ],
)
def test_detect_format(doc: dict[str, Any], expected: SourceFormat) -> None:
    assert detect_format(doc) is expected


@pytest.mark.parametrize(
    ("doc", "hint"),
    [
        ({"alertname": "x"}, "found keys: 'alertname'"),
        ({}, "found keys: none"),
        ({"alerts": []}, "neither 'version'"),
    ],
)
def test_detect_format_unknown(doc: dict[str, Any], hint: str) -> None:
    with pytest.raises(NormalizeError) as caught:
        detect_format(doc)

    assert caught.value.field == "$"
    assert caught.value.reason.startswith("unknown format: ")
    assert "'specversion'" in caught.value.reason
    assert hint in caught.value.reason


def test_named_format_overrides_detection() -> None:
    with pytest.raises(NormalizeError) as caught:
        normalize(
            encode(am_message(am_alert("a:1"))), received_at=RECEIVED, format=SourceFormat.NATIVE
        )

    assert str(caught.value) == "labels: required field is missing"


def test_naive_received_at_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware") as caught:
        normalize(encode(native_doc()), received_at=dt.datetime(2026, 11, 25, 14, 0))

    assert not isinstance(caught.value, NormalizeError)


# --- errors ---------------------------------------------------------------------------------


def _am_with(**alert_overrides: Any) -> bytes:
    return encode(am_message(am_alert("a:1"), am_alert("b:1", **alert_overrides)))


def _am_without(field: str) -> bytes:
    alert = am_alert("a:1")
    del alert[field]
    return encode(am_message(alert))


def _am_top(**changes: Any) -> bytes:
    message = am_message(am_alert("a:1"))
    message.update(changes)
    return encode(message)


def _ce_without(field: str) -> bytes:
    event = cloudevent()
    del event[field]
    return encode(event)


BAD_INPUTS: list[tuple[str, bytes, str, str]] = [
    (
        "malformed JSON",
        b'{"labels": {"a": "b"},\n "x": }',
        "$",
        "malformed JSON at line 2 column 7",
    ),
    ("truncated JSON", b'{"labels": {', "$", "malformed JSON at line 1 column 13"),
    ("NaN is not JSON", b'{"labels": {"a": "b"}, "v": NaN}', "$", "NaN is not valid JSON"),
    ("empty body", b"", "$", "malformed JSON at line 1 column 1"),
    ("top-level array", b"[1, 2]", "$", "expected a JSON object at the top level, got array"),
    ("top-level string", b'"firing"', "$", "got string"),
    ("invalid UTF-8", b'{"labels": {"a": "\xff"}}', "$", "invalid UTF-8 at byte offset 18"),
    (
        "too large",
        b'{"labels": {"a": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}}',
        "$",
        f"payload is {MAX_PAYLOAD_BYTES + 21} bytes, over the limit of {MAX_PAYLOAD_BYTES}",
    ),
    ("unknown format", b'{"alertname": "x"}', "$", "unknown format"),
    ("native: labels null", encode({"labels": None}), "labels", "expected an object, got null"),
    ("native: labels empty", encode(native_doc(labels={})), "labels", "must not be empty"),
    ("native: labels not an object", encode(native_doc(labels=["a"])), "labels", "got array"),
    (
        "native: label value not a string",
        encode(native_doc(labels={"alertname": "x", "port": 5432})),
        "labels.port",
        "expected a string, got number",
    ),
    (
        "native: label name with punctuation",
        encode(native_doc(labels={"app.kubernetes.io/name": True})),
        'labels["app.kubernetes.io/name"]',
        "got boolean",
    ),
    (
        "native: unknown field",
        encode(native_doc(severity="critical")),
        "severity",
        "unknown field (allowed: labels, annotations, status",
    ),
    (
        "native: bad status",
        encode(native_doc(status="ok")),
        "status",
        "'firing' or 'resolved', got 'ok'",
    ),
    (
        "native: naive timestamp",
        encode(native_doc(starts_at="2026-11-25T14:00:00")),
        "starts_at",
        "timestamp has no UTC offset: '2026-11-25T14:00:00'",
    ),
    (
        "native: date only",
        encode(native_doc(starts_at="2026-11-25")),
        "starts_at",
        "not an RFC 3339 timestamp: '2026-11-25'",
    ),
    (
        "native: space separator",
        encode(native_doc(ends_at="2026-11-25 14:00:00Z")),
        "ends_at",
        "not an RFC 3339 timestamp",
    ),
    (
        "native: epoch number",
        encode(native_doc(starts_at=1795615200)),
        "starts_at",
        "expected an RFC 3339 timestamp string, got number",
    ),
    (
        "native: instant out of range",
        encode(native_doc(starts_at="0001-01-01T00:00:00+01:00")),
        "starts_at",
        "not an RFC 3339 timestamp",
    ),
    (
        "native: non-ASCII digits",
        encode(native_doc(starts_at="\u0662026-11-25T14:00:00Z")),
        "starts_at",
        "not an RFC 3339 timestamp",
    ),
    (
        "native: offset minutes out of range",
        encode(native_doc(starts_at="2026-11-25T14:00:00+05:99")),
        "starts_at",
        "not an RFC 3339 timestamp",
    ),
    ("native: empty id", encode(native_doc(id="")), "id", "must not be empty"),
    ("native: long id", encode(native_doc(id="x" * 257)), "id", "longer than 256 characters"),
    ("native: link not a string", encode(native_doc(links={"doc": 1})), "links.doc", "got number"),
    ("AM: empty alerts", _am_top(alerts=[]), "alerts", "must not be empty"),
    (
        "AM: alerts not an array",
        _am_top(alerts={"a": 1}),
        "alerts",
        "expected an array, got object",
    ),
    (
        "AM: alert not an object",
        _am_top(alerts=["x"]),
        "alerts[0]",
        "expected an object, got string",
    ),
    (
        "AM: unsupported version",
        _am_top(version="5"),
        "version",
        "unsupported Alertmanager webhook version '5'",
    ),
    ("AM: version not a string", _am_top(version=4), "version", "expected a string, got number"),
    (
        "AM: truncatedAlerts negative",
        _am_top(truncatedAlerts=-1),
        "truncatedAlerts",
        "must be >= 0",
    ),
    ("AM: truncatedAlerts a string", _am_top(truncatedAlerts="2"), "truncatedAlerts", "got string"),
    ("AM: missing status", _am_without("status"), "alerts[0].status", "required field is missing"),
    (
        "AM: missing startsAt",
        _am_without("startsAt"),
        "alerts[0].startsAt",
        "required field is missing",
    ),
    ("AM: missing labels", _am_without("labels"), "alerts[0].labels", "required field is missing"),
    (
        "AM: bad timestamp",
        _am_with(startsAt="2024-13-01T00:00:00Z"),
        "alerts[1].startsAt",
        "not an RFC 3339 timestamp: '2024-13-01T00:00:00Z'",
    ),
    (
        "AM: naive endsAt",
        _am_with(endsAt="2026-11-25T14:00:00.5"),
        "alerts[1].endsAt",
        "no UTC offset",
    ),
    ("AM: bad status", _am_with(status="pending"), "alerts[1].status", "got 'pending'"),
    ("AM: label value null", _am_with(labels={"a": None}), "alerts[1].labels.a", "got null"),
    (
        "AM: annotation list",
        _am_with(annotations={"d": ["x"]}),
        "alerts[1].annotations.d",
        "got array",
    ),
    (
        "Grafana: value not a number",
        encode(grafana_message(values={"A": "1"})),
        "alerts[0].values.A",
        "got string",
    ),
    (
        "Grafana: orgId a string",
        encode(grafana_message() | {"orgId": "1"}),
        "orgId",
        "expected an integer, got string",
    ),
    ("CE: missing id", _ce_without("id"), "id", "required field is missing"),
    ("CE: missing source", _ce_without("source"), "source", "required field is missing"),
    ("CE: missing type", _ce_without("type"), "type", "required field is missing"),
    ("CE: missing data", _ce_without("data"), "data", "required field is missing"),
    ("CE: empty id", encode(cloudevent(id="")), "id", "must not be empty"),
    (
        "CE: wrong specversion",
        encode(cloudevent(specversion="0.3")),
        "specversion",
        "expected '1.0'",
    ),
    ("CE: numeric specversion", encode(cloudevent(specversion=1.0)), "specversion", "got number"),
    ("CE: naive time", encode(cloudevent(time="2026-11-25T14:06:41")), "time", "no UTC offset"),
    (
        "CE: data_base64",
        encode(cloudevent(data_base64="eyJsYWJlbHMiOnt9fQ==")),
        "data_base64",
        "not supported",
    ),
    (
        "CE: non-JSON content type",
        encode(cloudevent(datacontenttype="application/xml")),
        "datacontenttype",
        "expected a JSON media type",
    ),
    (
        "CE: data without labels",
        encode(cloudevent(data={"annotations": {}})),
        "data.labels",
        "required field is missing",
    ),
    ("CE: data a string", encode(cloudevent(data="PostgresDown")), "data", "got string"),
    (
        "CE: data with unknown field",
        encode(cloudevent(data=native_doc(alertname="x"))),
        "data.alertname",
        "unknown field",
    ),
    (
        "CE: data label not a string",
        encode(cloudevent(data=native_doc(labels={"a": 1}))),
        "data.labels.a",
        "expected a string, got number",
    ),
]


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [pytest.param(raw, field, reason, id=name) for name, raw, field, reason in BAD_INPUTS],
)
def test_bad_inputs_name_the_field_and_reason(raw: bytes, field: str, reason: str) -> None:
    with pytest.raises(NormalizeError) as caught:
        normalize(raw, received_at=RECEIVED)

    error = caught.value
    assert error.field == field
    assert reason in error.reason
    assert str(error) == f"{field}: {error.reason}"
    assert "\n" not in str(error)
    assert isinstance(error, ValueError)


def test_error_message_is_one_line_even_for_multiline_input() -> None:
    raw = encode(native_doc(status="firing\nresolved" + "x" * 200))

    with pytest.raises(NormalizeError) as caught:
        normalize(raw, received_at=RECEIVED)

    assert "\n" not in str(caught.value)
    assert len(str(caught.value)) < 200


def test_missing_data_base64_check_reports_before_data() -> None:
    event = cloudevent(data_base64="e30=")
    del event["data"]

    with pytest.raises(NormalizeError, match=r"^data_base64: binary event data is not supported"):
        normalize(encode(event), received_at=RECEIVED)


def test_payload_at_exactly_the_limit_is_accepted() -> None:
    body = encode(native_doc())
    raw = body + b" " * (MAX_PAYLOAD_BYTES - len(body))

    assert len(raw) == MAX_PAYLOAD_BYTES
    assert decode_payload(raw) == native_doc()


def test_deeply_nested_json_is_an_error_not_a_crash() -> None:
    raw = b'{"labels": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"

    with pytest.raises(NormalizeError) as caught:
        decode_payload(raw)

    assert caught.value.field == "$"


def test_utf8_byte_order_mark_is_tolerated() -> None:
    assert decode_payload(b"\xef\xbb\xbf" + encode(native_doc())) == native_doc()


# --- split_stream ---------------------------------------------------------------------------


def test_split_stream_single_pretty_printed_document() -> None:
    data = json.dumps(am_message(am_alert("a:1")), indent=2).encode() + b"\n"

    assert list(split_stream(data)) == [(1, data)]


def test_split_stream_json_lines_with_blank_lines() -> None:
    line_a = encode(native_doc())
    line_b = encode(cloudevent())
    data = b"\n" + line_a + b"\r\n   \n" + line_b + b"\n\n"

    assert list(split_stream(data)) == [(2, line_a), (4, line_b)]


def test_split_stream_yields_a_bad_line_with_its_number() -> None:
    good = encode(native_doc())
    data = b"\n".join([good, b'{"labels": {"a": ', b"not json at all", good]) + b"\n"

    chunks = list(split_stream(data))

    assert chunks == [(1, good), (2, b'{"labels": {"a": '), (3, b"not json at all"), (4, good)]
    outcomes = []
    for number, chunk in chunks:
        try:
            normalize(chunk, received_at=RECEIVED)
            outcomes.append((number, "ok"))
        except NormalizeError as exc:
            outcomes.append((number, exc.field))
    assert outcomes == [(1, "ok"), (2, "$"), (3, "$"), (4, "ok")]


def test_split_stream_invalid_utf8_line_is_yielded() -> None:
    good = encode(native_doc())
    data = good + b"\n" + b'{"labels": {"a": "\xff"}}' + b"\n"

    assert list(split_stream(data)) == [(1, good), (2, b'{"labels": {"a": "\xff"}}')]


def test_split_stream_malformed_pretty_document_is_one_message() -> None:
    data = b'{\n  "labels": {\n    "a": "b",\n  }\n}\n'

    assert list(split_stream(data)) == [(1, data)]


def test_split_stream_empty_input() -> None:
    assert list(split_stream(b"")) == []
    assert list(split_stream(b"\n \n")) == []


# --- examples -------------------------------------------------------------------------------


def _stream() -> list[tuple[int, bytes]]:
    return list(split_stream((EXAMPLES / "alertmanager-stream.jsonl").read_bytes()))


def test_every_line_of_the_example_stream_normalizes() -> None:
    lines = _stream()

    assert 30 <= len(lines) <= 50
    results = [normalize(raw, received_at=RECEIVED) for _, raw in lines]
    assert all(r.format is SourceFormat.ALERTMANAGER for r in results)
    alerts = [a for r in results for a in r.alerts]
    names = {a.name for a in alerts}
    assert {
        "PostgresDown",
        "PostgresUnreachable",
        "ErrorBudgetBurn",
        "HighLatencyP99",
        "UnusualDataEgress",
        "SuspiciousLogin",
        "Watchdog",
        "DiskSpaceLow",
    } <= names
    assert any(r.truncated == 2 for r in results)
    assert any(len(r.alerts) > 1 for r in results)
    assert any(a.status is AlertStatus.RESOLVED for a in alerts)
    descriptions = " ".join(a.annotations.get("description", "") for a in alerts)
    assert "<!channel>" in descriptions
    assert "{{ 7*7 }}" in descriptions
    assert all(a.starts_at.date() == dt.date(2026, 11, 25) for a in alerts)


def test_example_stream_resend_of_postgres_down_repeats_its_id() -> None:
    results = [normalize(raw, received_at=RECEIVED) for _, raw in _stream()]
    postgres = [a for r in results for a in r.alerts if a.name == "PostgresDown"]
    firing_ids = [a.id for a in postgres if a.status is AlertStatus.FIRING]

    assert len(firing_ids) > len(set(firing_ids))
    assert len({a.fingerprint for a in postgres}) == 1
    assert any(a.status is AlertStatus.RESOLVED for a in postgres)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("grafana-alert.json", SourceFormat.GRAFANA),
        ("cloudevent-alert.json", SourceFormat.CLOUDEVENTS),
        ("native-alert.json", SourceFormat.NATIVE),
    ],
)
def test_example_documents_normalize(name: str, expected: SourceFormat) -> None:
    raw = (EXAMPLES / name).read_bytes()

    assert list(split_stream(raw)) == [(1, raw)]
    result = normalize(raw, received_at=RECEIVED)
    assert result.format is expected
    assert len(result.alerts) == 1


def test_inputs_are_not_mutated() -> None:
    doc = grafana_message()
    snapshot = copy.deepcopy(doc)

    detect_format(doc)

    assert doc == snapshot


# --- robustness -----------------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "labels",
        "alerts",
        "version",
        "status",
        "startsAt",
        "endsAt",
        "specversion",
        "id",
        "source",
        "type",
        "data",
        "orgId",
        "values",
        "starts_at",
        "fingerprint",
        "annotations",
        "a",
    ]
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["4", "1.0", "firing", "resolved", "2026-11-25T14:00:00Z", ZERO_TIME]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(_KEYS | st.text(), inner, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.dictionaries(_KEYS, _JSON, max_size=6))
def test_any_json_object_normalizes_or_raises_normalize_error(doc: dict[str, Any]) -> None:
    message = ""
    try:
        result = normalize(encode(doc), received_at=RECEIVED)
    except NormalizeError as exc:
        message = str(exc)
    else:
        assert result.alerts
    assert "\n" not in message


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(max_size=200))
def test_any_bytes_normalize_or_raise_normalize_error(raw: bytes) -> None:
    with contextlib.suppress(NormalizeError):
        normalize(raw, received_at=RECEIVED)
    assert sum(1 for _ in split_stream(raw)) <= raw.count(b"\n") + 1
