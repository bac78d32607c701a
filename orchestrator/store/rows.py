"""Conversion between the store's rows and the domain's values, in both directions, for sql.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.actions import Action
from orchestrator.incident.model import Actor, Incident, Severity, Status
from orchestrator.store.protocols import (
    AlertRecord,
    DeadLetter,
    Disposition,
    OutboxItem,
    OutboxStatus,
    Timer,
    TimerStatus,
)
from orchestrator.timeline import Kind, TimelineEntry

Row = Mapping[Any, Any]


def incident_values(incident: Incident) -> dict[str, Any]:
    return {
        "number": incident.number,
        "title": incident.title,
        "status": incident.status.value,
        "severity": incident.severity.value,
        "max_severity": incident.max_severity.value,
        "playbook": incident.playbook,
        "playbook_version": incident.playbook_version,
        "group_key": incident.group_key,
        "group_labels": dict(incident.group_labels),
        "declared_at": incident.declared_at,
        "updated_at": incident.updated_at,
        "service": incident.service,
        "team": incident.team,
        "summary": incident.summary,
        "is_drill": incident.is_drill,
        # Sorted so that equal sets store identical text.
        "firing": sorted(incident.firing),
        "cycle": incident.cycle,
        "acknowledged_at": incident.acknowledged_at,
        "mitigated_at": incident.mitigated_at,
        "resolved_at": incident.resolved_at,
        "closed_at": incident.closed_at,
        "revision": incident.revision,
        "links": dict(incident.links),
        "commander": incident.commander,
        "policy": incident.policy,
        "drill_id": incident.drill_id,
        "trace": incident.trace,
    }


# Fixed when the incident is declared (the policy is its snapshot): an update leaves them out
# rather than write the same text again, the policy's JSON above all.
FIXED_AT_DECLARATION = frozenset(
    {
        "number",
        "declared_at",
        "playbook",
        "playbook_version",
        "group_key",
        "group_labels",
        "is_drill",
        "drill_id",
        "trace",
        "policy",
    }
)


def incident_changes(incident: Incident) -> dict[str, Any]:
    """The columns an update of an existing incident may change."""
    values = incident_values(incident)
    for name in FIXED_AT_DECLARATION:
        del values[name]
    return values


def incident_from_row(row: Row) -> Incident:
    return Incident(
        number=row["number"],
        title=row["title"],
        status=Status(row["status"]),
        severity=Severity(row["severity"]),
        max_severity=Severity(row["max_severity"]),
        playbook=row["playbook"],
        playbook_version=row["playbook_version"],
        group_key=row["group_key"],
        group_labels=dict(row["group_labels"]),
        declared_at=row["declared_at"],
        updated_at=row["updated_at"],
        service=row["service"],
        team=row["team"],
        summary=row["summary"],
        is_drill=bool(row["is_drill"]),
        firing=frozenset(row["firing"]),
        cycle=row["cycle"],
        acknowledged_at=row["acknowledged_at"],
        mitigated_at=row["mitigated_at"],
        resolved_at=row["resolved_at"],
        closed_at=row["closed_at"],
        revision=row["revision"],
        links=dict(row["links"]),
        commander=row["commander"],
        policy=row["policy"],
        drill_id=row["drill_id"],
        trace=row["trace"],
    )


def timeline_values(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "incident_number": entry.incident_number,
        "seq": entry.seq,
        "kind": entry.kind.value,
        "actor": entry.actor.as_dict(),
        "occurred_at": entry.occurred_at,
        "recorded_at": entry.recorded_at,
        "data": entry.data,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def timeline_from_row(row: Row) -> TimelineEntry:
    return TimelineEntry(
        incident_number=row["incident_number"],
        seq=row["seq"],
        kind=Kind(row["kind"]),
        actor=Actor.from_dict(row["actor"]),
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        data=row["data"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def alert_values(record: AlertRecord) -> dict[str, Any]:
    return {
        "alert_id": record.alert_id,
        "source": record.source,
        "fingerprint": record.fingerprint,
        "status": record.status,
        "labels": dict(record.labels),
        "starts_at": record.starts_at,
        "received_at": record.received_at,
        "disposition": record.disposition.value,
        "playbook": record.playbook,
        "incident_number": record.incident_number,
    }


def alert_from_row(row: Row) -> AlertRecord:
    return AlertRecord(
        alert_id=row["alert_id"],
        source=row["source"],
        fingerprint=row["fingerprint"],
        status=row["status"],
        labels=dict(row["labels"]),
        starts_at=row["starts_at"],
        received_at=row["received_at"],
        disposition=Disposition(row["disposition"]),
        playbook=row["playbook"],
        incident_number=row["incident_number"],
    )


def dead_letter_values(letter: DeadLetter) -> dict[str, Any]:
    return {
        "origin": letter.origin,
        "error": letter.error,
        "raw": bytes(letter.raw),
        "headers": dict(letter.headers),
        "received_at": letter.received_at,
    }


def dead_letter_from_row(row: Row) -> DeadLetter:
    return DeadLetter(
        id=row["id"],
        origin=row["origin"],
        error=row["error"],
        # psycopg hands back bytes, and sqlite3 may hand back a memoryview.
        raw=bytes(row["raw"]),
        received_at=row["received_at"],
        headers=dict(row["headers"]),
    )


def outbox_from_row(row: Row) -> OutboxItem:
    return OutboxItem(
        action=Action(
            key=row["key"],
            name=row["name"],
            params=row["params"],
            incident_number=row["incident_number"],
            is_drill=bool(row["is_drill"]),
            drill_id=row["drill_id"],
            trace=row["trace"],
        ),
        status=OutboxStatus(row["status"]),
        attempts=row["attempts"],
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
        result=row["result"],
    )


def timer_values(timer: Timer) -> dict[str, Any]:
    return {
        "key": timer.key,
        "incident_number": timer.incident_number,
        "kind": timer.kind,
        "due_at": timer.due_at,
        "payload": dict(timer.payload),
        "drill_id": timer.drill_id,
        "trace": timer.trace,
    }


def timer_from_row(row: Row) -> Timer:
    return Timer(
        key=row["key"],
        incident_number=row["incident_number"],
        kind=row["kind"],
        due_at=row["due_at"],
        payload=dict(row["payload"]),
        status=TimerStatus(row["status"]),
        drill_id=row["drill_id"],
        trace=row["trace"],
    )
