"""Re-timing a recording: the replay is the recording, later, spacing and timestamps moved alike."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from orchestrator.drill.retime import message_time, retimed
from orchestrator.ingest.alert import AlertStatus, SourceFormat
from orchestrator.ingest.normalize import NormalizeError, normalize

GO_ZERO = "0001-01-01T00:00:00Z"
START = dt.datetime(2026, 3, 2, 18, 30, tzinfo=dt.UTC)
RECORDED = dt.datetime(2025, 11, 20, 3, 12, tzinfo=dt.UTC)
SHIFT = START - RECORDED
RECEIVED = dt.datetime(2026, 3, 2, 18, 45, tzinfo=dt.UTC)


def z(when: dt.datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def webhook_alert(
    alertname: str, status: str, starts_at: str, ends_at: str = GO_ZERO, **annotations: str
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": alertname, "service": "orders-db", "severity": "critical"},
        "annotations": {"summary": f"{alertname} on orders-db", **annotations},
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=pg_up+%3D%3D+0",
        "fingerprint": f"{alertname.lower()}-4f1c",
    }


def webhook(status: str, *alerts: dict[str, Any]) -> bytes:
    """An Alertmanager (version 4) webhook message, one line of a JSON-lines recording."""
    return json.dumps(
        {
            "version": "4",
            "groupKey": '{}/{severity="critical"}:{service="orders-db"}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "orchestrator",
            "groupLabels": {"service": "orders-db"},
            "commonLabels": {"service": "orders-db", "severity": "critical"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example:9093",
            "alerts": list(alerts),
        }
    ).encode()


def recording() -> list[bytes]:
    """PostgresDown fires; 90s later the replica lags; at 300s PostgresDown resolves."""
    down_at = z(RECORDED)
    lag_at = z(RECORDED + dt.timedelta(seconds=90))
    resolved_at = z(RECORDED + dt.timedelta(seconds=300))
    return [
        webhook(
            "firing",
            webhook_alert("PostgresDown", "firing", down_at, last_backup=z(RECORDED)),
        ),
        webhook(
            "firing",
            webhook_alert("PostgresDown", "firing", down_at),
            webhook_alert("PostgresReplicaLag", "firing", lag_at),
        ),
        webhook(
            "resolved",
            webhook_alert("PostgresDown", "resolved", down_at, resolved_at),
        ),
    ]


def test_recording_keeps_its_spacing_on_the_scenario_clock() -> None:
    messages = recording()
    assert [message_time(raw) for raw in messages] == [
        RECORDED,
        RECORDED + dt.timedelta(seconds=90),
        RECORDED + dt.timedelta(seconds=300),
    ]
    out = retimed(messages, START)
    assert [when for when, _ in out] == [
        START,
        START + dt.timedelta(seconds=90),
        START + dt.timedelta(seconds=300),
    ]


def test_every_timestamp_moves_by_the_same_shift_but_go_zero_time_stays() -> None:
    messages = recording()
    for (_, shifted), raw in zip(retimed(messages, START), messages, strict=True):
        before, after = json.loads(raw), json.loads(shifted)
        for old, new in zip(before["alerts"], after["alerts"], strict=True):
            assert new["startsAt"] == z(dt.datetime.fromisoformat(old["startsAt"]) + SHIFT)
            if old["endsAt"] == GO_ZERO:
                assert new["endsAt"] == GO_ZERO
            else:
                assert new["endsAt"] == z(dt.datetime.fromisoformat(old["endsAt"]) + SHIFT)
            assert new["labels"] == old["labels"]
            assert new["fingerprint"] == old["fingerprint"]
        # Nothing else in the envelope changes.
        assert {k: v for k, v in after.items() if k != "alerts"} == {
            k: v for k, v in before.items() if k != "alerts"
        }
    first = json.loads(retimed(messages, START)[0][1])
    assert first["alerts"][0]["annotations"]["last_backup"] == z(START)


def test_retimed_messages_still_normalize_with_the_shifted_times() -> None:
    out = retimed(recording(), START)
    normalized = [normalize(raw, received_at=RECEIVED) for _, raw in out]
    assert all(n.format is SourceFormat.ALERTMANAGER for n in normalized)
    assert [[a.starts_at for a in n.alerts] for n in normalized] == [
        [START],
        [START, START + dt.timedelta(seconds=90)],
        [START],
    ]
    firing = normalized[1].alerts
    assert [a.ends_at for a in firing] == [None, None]  # the Go zero time still reads "not ended"
    resolved = normalized[2].alerts[0]
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.ends_at == START + dt.timedelta(seconds=300)
    # Same alert, same occurrence: the firing and the resolve keep one fingerprint.
    assert resolved.fingerprint == normalized[0].alerts[0].fingerprint


def test_fractional_seconds_from_alertmanager_are_shifted_too() -> None:
    # Prometheus stamps alerts to the nanosecond; datetime keeps microseconds.
    first = webhook("firing", webhook_alert("PostgresDown", "firing", "2025-11-20T03:12:00.5Z"))
    second = webhook(
        "firing", webhook_alert("PostgresReplicaLag", "firing", "2025-11-20T03:13:30.750000123Z")
    )
    out = retimed([first, second], START)
    assert [when for when, _ in out] == [START, START + dt.timedelta(seconds=90.25)]
    starts = [json.loads(raw)["alerts"][0]["startsAt"] for _, raw in out]
    assert starts == ["2026-03-02T18:30:00Z", "2026-03-02T18:31:30.250000Z"]


def test_a_resolved_native_alert_happened_when_it_ended() -> None:
    raw = json.dumps(
        {
            "labels": {"alertname": "DiskFull", "service": "orders-db", "host": "db-1"},
            "annotations": {"summary": "disk /var/lib/postgresql is 100% full"},
            "status": "resolved",
            "starts_at": "2025-11-20T03:00:00Z",
            "ends_at": "2025-11-20T04:25:00+01:00",
            "links": {"dashboard": "https://grafana.example/d/disk"},
        }
    ).encode()
    assert message_time(raw) == dt.datetime(2025, 11, 20, 3, 25, tzinfo=dt.UTC)
    [(when, shifted)] = retimed([raw], START)
    assert when == START
    doc = json.loads(shifted)
    # Each timestamp keeps the offset it was recorded with.
    assert doc["ends_at"] == "2026-03-02T19:30:00+01:00"
    assert doc["starts_at"] == z(START - dt.timedelta(minutes=25))


def test_a_message_the_intake_would_dead_letter_has_no_time() -> None:
    raw = webhook("firing", webhook_alert("PostgresDown", "firing", "20 Nov 2025 03:12"))
    with pytest.raises(NormalizeError) as caught:
        message_time(raw)
    assert caught.value.field == "alerts[0].startsAt"
    with pytest.raises(NormalizeError):
        message_time(b'{"labels": {}}')
    with pytest.raises(NormalizeError):
        retimed([*recording(), b"not json"], START)


def test_a_string_that_only_looks_like_a_date_is_left_alone() -> None:
    not_dates = {
        "note": "2026-13-45T99:00:00Z is bad",
        "bad_date": "2026-13-45T99:00:00Z",
        "no_offset": "2025-11-20T03:12:00.000",
        "ticket": "2025-11-20T03-INC-4411-postgres",
    }
    raw = webhook("firing", webhook_alert("PostgresDown", "firing", z(RECORDED), **not_dates))
    [(_, shifted)] = retimed([raw], START)
    alert = json.loads(shifted)["alerts"][0]
    assert alert["startsAt"] == z(START)
    for key, value in not_dates.items():
        assert alert["annotations"][key] == value
