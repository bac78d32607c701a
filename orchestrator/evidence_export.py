"""The evidence archive of SPEC §5 for a period, streamed page by page into a zip: the alert
population, the gap-free incident register, each incident's chained timeline, notifications
and playbook record, the signed checkpoints, and a manifest with every file's SHA-256 and the
verification result."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from importlib.metadata import version
from typing import IO, Any

from orchestrator.clock import Clock
from orchestrator.evidence import Verification, check_register
from orchestrator.report.action_items import ActionItem
from orchestrator.report.chains import verify_incident
from orchestrator.report.checkpoints import verify_checkpoints
from orchestrator.report.postmortem import Postmortem
from orchestrator.store.protocols import OutboxItem
from orchestrator.store.sql import SqlStore
from orchestrator.timeline import TimelineEntry, entry_json

PAGE = 500  # incidents whose actions are read in one query

CRITERIA = {
    "manifest.json": "completeness and accuracy of the population",
    "alerts.csv": "CC7.2, CC7.3",
    "incidents.csv": "CC7.3, CC7.4, CC7.5",
    "incidents/<n>/timeline.jsonl": "CC7.4",
    "incidents/<n>/notifications.csv": "CC7.4, CC2.2, CC2.3",
    "incidents/<n>/playbook.json": "CC7.4",
    "incidents/<n>/postmortem.md": "CC7.5",
    "incidents/<n>/action_items.csv": "CC7.4, CC7.5",
    "checkpoints.jsonl": "CC7.4 (the timeline is complete up to each signed checkpoint)",
}


class _Archive:
    """Writes files into the zip one at a time, hashing each as it goes."""

    def __init__(self, zip_file: zipfile.ZipFile) -> None:
        self.zip = zip_file
        self.files: dict[str, dict[str, Any]] = {}

    @contextlib.contextmanager
    def file(self, name: str) -> Iterator[Callable[[str], None]]:
        digest, size = hashlib.sha256(), 0

        with self.zip.open(name, "w") as out:

            def put(text: str) -> None:
                nonlocal size
                data = text.encode()
                digest.update(data)
                size += len(data)
                out.write(data)

            yield put
        self.files[name] = {"sha256": digest.hexdigest(), "bytes": size}

    def write(self, name: str, chunks: Iterator[str]) -> None:
        with self.file(name) as put:
            for chunk in chunks:
                put(chunk)


def _csv_line(row: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    return buffer.getvalue()


def _csv_rows(header: list[str], rows: Iterator[list[Any]]) -> Iterator[str]:
    yield _csv_line(header)
    for row in rows:
        yield _csv_line(row)


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


async def export_archive(
    store: SqlStore,
    out: IO[bytes],
    clock: Clock,
    *,
    period: tuple[dt.datetime | None, dt.datetime | None] = (None, None),
    trusted_key: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Writes the evidence archive for incidents declared (and alerts received) in `period`;
    returns its manifest. Nothing is loaded whole: incidents and alerts come page by page."""
    start, end = period
    checkpoints = await store.list_checkpoints()
    heads, problems = verify_checkpoints(checkpoints, trusted_key)
    verification = Verification(checkpoints=len(checkpoints), problems=problems)
    register: list[list[Any]] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zip_file:
        archive = _Archive(zip_file)
        with archive.file("alerts.csv") as put:
            put(_csv_line(ALERT_COLUMNS))
            async for record in store.alerts_received(start, end):
                put(
                    _csv_line(
                        [
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
                    )
                )
        postmortems = await store.list_postmortems()
        items: dict[int, list[ActionItem]] = {}
        for item in await store.list_action_items():
            items.setdefault(item.incident_number, []).append(item)
        page: dict[int, list[OutboxItem]] = {}
        async for incident, entries in store.incidents_with_timelines(start, end):
            number = incident.number
            if number not in page:  # the next page of incidents: their actions in one query
                page = await store.actions_between(number, number + PAGE - 1)
                page.setdefault(number, [])
            verification.chains += 1
            verification.entries += len(entries)
            verification.breaks += verify_incident(number, entries, heads.get(number))
            archive.write(
                f"incidents/{number}/timeline.jsonl",
                (json.dumps(entry_json(e), sort_keys=True) + "\n" for e in entries),
            )
            actions = page.get(number, [])
            archive.write(
                f"incidents/{number}/notifications.csv",
                _csv_rows(
                    [
                        "key",
                        "action",
                        "target",
                        "created_at",
                        "status",
                        "attempts",
                        "delivered_at",
                        "last_error",
                        "result",
                    ],
                    iter(
                        [
                            [
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
                            for item in actions
                        ]
                    ),
                ),
            )
            archive.write(
                f"incidents/{number}/playbook.json",
                iter([json.dumps(_playbook_record(incident, entries, actions), indent=2)]),
            )
            _follow_up(archive, number, postmortems.get(number), items.get(number, []))
            register.append(_register_row(incident, entries))
            if progress is not None:
                progress(1)
        check_register(register, verification)
        archive.write(
            "incidents.csv",
            _csv_rows(
                [
                    "number",
                    "title",
                    "is_drill",
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
                ],
                iter(register),
            ),
        )
        archive.write(
            "checkpoints.jsonl",
            (json.dumps(cp.as_json(), sort_keys=True) + "\n" for cp in checkpoints),
        )
        archive.write("README.md", iter([_readme()]))
        manifest = {
            "generator": f"incident-orchestrator {version('incident-orchestrator')}",
            "generated_at": clock.now().isoformat(),
            "period": {
                "from": start.isoformat() if start else None,
                "to": end.isoformat() if end else None,
                "incidents_by": "declared_at",
                "alerts_by": "received_at",
            },
            "counts": {"incidents": len(register), "entries": verification.entries},
            "chain_heads": {str(row[0]): row[-1] for row in register},
            "verification": verification.as_json(),
            "criteria": CRITERIA,
            "files": archive.files,
        }
        zip_file.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def _follow_up(
    archive: _Archive, number: int, postmortem: Postmortem | None, items: list[ActionItem]
) -> None:
    """The postmortem as people wrote (and approved) it, and its corrective actions."""
    if postmortem is not None:
        approval = (
            f"approved by {postmortem.approved_by} at {postmortem.approved_at.isoformat()}"
            if postmortem.approved_at is not None
            else f"{postmortem.status.value}, not approved"
        )
        header = f"<!-- postmortem of incident #{number}: {approval} -->\n"
        archive.write(f"incidents/{number}/postmortem.md", iter([header, postmortem.markdown]))
    if items:
        archive.write(
            f"incidents/{number}/action_items.csv",
            _csv_rows(
                [
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
                ],
                iter(
                    [
                        [
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
                        for item in items
                    ]
                ),
            ),
        )


def _target(params: dict[str, Any]) -> str:
    return str(params.get("channel") or params.get("service") or params.get("name") or "")


def _register_row(incident: Any, entries: list[TimelineEntry]) -> list[Any]:
    def when(value: dt.datetime | None) -> str:
        return value.isoformat() if value else ""

    return [
        incident.number,
        incident.title,
        incident.is_drill,
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


def _playbook_record(
    incident: Any, entries: list[TimelineEntry], actions: list[Any]
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


def _readme() -> str:
    lines = [
        "# Incident evidence archive",
        "",
        "Verify it offline: `orchestrator evidence verify --archive THIS.zip [--public-key HEX]`.",
        "Every timeline entry carries the SHA-256 of the previous one; signed checkpoints",
        "(checkpoints.jsonl, Ed25519) vouch for each chain's head, so dropped entries show too.",
        "",
        "| file | criteria |",
        "| --- | --- |",
        *(f"| `{name}` | {criteria} |" for name, criteria in CRITERIA.items()),
        "",
    ]
    return "\n".join(lines)
