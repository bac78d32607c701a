"""What each file of the evidence archive holds: the CSV columns and rows, the playbook
record, the README and the criteria each file answers (SPEC §5)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

from orchestrator.drill.record import DrillRun
from orchestrator.incident.model import Incident
from orchestrator.report.action_items import ActionItem
from orchestrator.store.protocols import AlertRecord, OutboxItem
from orchestrator.timeline import TimelineEntry

CRITERIA = {
    "manifest.json": "completeness and accuracy of the population",
    "alerts.csv": "CC7.2, CC7.3",
    "incidents.csv": "CC7.3, CC7.4, CC7.5",
    "incidents/<n>/timeline.jsonl": "CC7.4",
    "incidents/<n>/notifications.csv": "CC7.4, CC2.2, CC2.3",
    "incidents/<n>/playbook.json": "CC7.4",
    "incidents/<n>/postmortem.md": "CC7.5",
    "incidents/<n>/action_items.csv": "CC7.4, CC7.5",
    "drills/<id>/scenario.yaml": "CC7.5 (exercise design)",
    "drills/<id>/run.json": "CC7.4, CC7.5",
    "drills/<id>/report.md": "CC7.5",
    "checkpoints.jsonl": "CC7.4 (the timeline is complete up to each signed checkpoint)",
}


def csv_line(row: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    return buffer.getvalue()


def csv_rows(header: list[str], rows: Iterator[list[Any]]) -> Iterator[str]:
    yield csv_line(header)
    for row in rows:
        yield csv_line(row)


ALERT_COLUMNS = [
    "alert_id",
    "source",
    "fingerprint",
    "status",
    "received_at",
    "starts_at",
    "disposition",
    "playbook",
    "incident",
    "labels",
]
NOTIFICATION_COLUMNS = [
    "key",
    "action",
    "target",
    "created_at",
    "status",
    "attempts",
    "delivered_at",
    "last_error",
    "result",
]
REGISTER_COLUMNS = [
    "number",
    "title",
    "is_drill",
    "drill_id",
    "status",
    "severity",
    "max_severity",
    "service",
    "team",
    "playbook",
    "playbook_version",
    "commander",
    "declared_at",
    "acknowledged_at",
    "mitigated_at",
    "resolved_at",
    "closed_at",
    "entries",
    "chain_head",
]
ACTION_ITEM_COLUMNS = [
    "id",
    "title",
    "owner",
    "due",
    "type",
    "status",
    "link",
    "created_at",
    "closed_at",
    "closed_by",
    "evidence",
]


def alert_row(record: AlertRecord) -> list[Any]:
    return [
        record.alert_id,
        record.source,
        record.fingerprint,
        record.status,
        record.received_at.isoformat(),
        record.starts_at.isoformat(),
        record.disposition.value,
        record.playbook or "",
        record.incident_number or "",
        json.dumps(record.labels, sort_keys=True),
    ]


def notification_row(item: OutboxItem) -> list[Any]:
    return [
        item.action.key,
        item.action.name,
        _target(item.action.params),
        item.created_at.isoformat(),
        item.status.value,
        item.attempts,
        item.delivered_at.isoformat() if item.delivered_at else "",
        item.last_error,
        json.dumps(item.result, sort_keys=True),
    ]


def action_item_row(item: ActionItem) -> list[Any]:
    return [
        item.id,
        item.title,
        item.owner,
        item.due.isoformat() if item.due else "",
        item.type.value,
        item.status.value,
        item.link,
        item.created_at.isoformat(),
        item.closed_at.isoformat() if item.closed_at else "",
        item.closed_by,
        item.evidence,
    ]


def _target(params: dict[str, Any]) -> str:
    return str(params.get("channel") or params.get("service") or params.get("name") or "")


def register_row(incident: Incident, entries: list[TimelineEntry]) -> list[Any]:
    def when(value: dt.datetime | None) -> str:
        return value.isoformat() if value else ""

    return [
        incident.number,
        incident.title,
        incident.is_drill,
        incident.drill_id or "",
        incident.status.value,
        incident.severity.value,
        incident.max_severity.value,
        incident.service,
        incident.team,
        incident.playbook,
        incident.playbook_version,
        incident.commander,
        when(incident.declared_at),
        when(incident.acknowledged_at),
        when(incident.mitigated_at),
        when(incident.resolved_at),
        when(incident.closed_at),
        len(entries),
        entries[-1].hash if entries else "",
    ]


def playbook_record(
    incident: Incident, entries: list[TimelineEntry], actions: list[OutboxItem]
) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for item in actions:
        statuses[item.status.value] = statuses.get(item.status.value, 0) + 1
    return {
        "playbook": incident.playbook,
        "version": incident.playbook_version,
        "escalation_policy": incident.policy,
        "steps": statuses,
        "timers": {
            kind: sum(1 for e in entries if e.kind.value == kind)
            for kind in ("timer.scheduled", "timer.fired", "timer.cancelled", "timer.skipped")
        },
    }


def drill_run_record(run: DrillRun) -> dict[str, Any]:
    """drills/<id>/run.json: the run as stored, its whole result (log, observations, scores)."""

    def when(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": run.id,
        "scenario_id": run.scenario_id,
        "title": run.title,
        "scenario_sha256": run.scenario_sha256,
        "mode": run.mode.value,
        "state": run.state.value,
        "started_at": when(run.started_at),
        "ended_at": when(run.ended_at),
        "clock_start": when(run.clock_start),
        "result": run.result,
    }


def readme() -> str:
    lines = [
        "# Incident evidence archive",
        "",
        "Verify it offline: `orchestrator evidence verify --archive THIS.zip [--public-key HEX]`.",
        "Every timeline entry carries the SHA-256 of the previous one; signed checkpoints",
        "(checkpoints.jsonl, Ed25519) vouch for each chain's head, so dropped entries show too.",
        "Drill runs started in the period are under drills/<id>/: the scenario as written",
        "(its SHA-256 is run.json's scenario_sha256), the run's record and its after-action",
        "report; their incidents are in incidents.csv with is_drill and drill_id set.",
        "",
        "| file | criteria |",
        "| --- | --- |",
        *(f"| `{name}` | {criteria} |" for name, criteria in CRITERIA.items()),
        "",
    ]
    return "\n".join(lines)
