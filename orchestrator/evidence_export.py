"""The evidence archive of SPEC §5 for a period, streamed page by page into a zip: the alert
population, the gap-free incident register, each incident's chained timeline, notifications
and playbook record, the drill runs with their after-action reports, the signed checkpoints,
and a manifest with every file's SHA-256 and the verification result. Memory stays flat
whatever the number of incidents: nothing is kept per incident but on disk (evidence_zip,
evidence_manifest); what goes in each file is in evidence_files."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import IO, Any, Self

from orchestrator.clock import Clock
from orchestrator.drill.record import DrillRun
from orchestrator.evidence import Verification, register_gap
from orchestrator.evidence_files import (
    ACTION_ITEM_COLUMNS,
    ALERT_COLUMNS,
    CRITERIA,
    NOTIFICATION_COLUMNS,
    REGISTER_COLUMNS,
    action_item_row,
    alert_row,
    csv_line,
    csv_rows,
    drill_run_record,
    notification_row,
    playbook_record,
    readme,
    register_row,
)
from orchestrator.evidence_manifest import Archive, Spool, SpooledObject
from orchestrator.evidence_zip import SpooledZipWriter
from orchestrator.incident.model import Incident
from orchestrator.report.action_items import ActionItem
from orchestrator.report.chains import verify_incident
from orchestrator.report.checkpoints import Checkpoint, verify_checkpoints
from orchestrator.report.drill_report import render_drill_report
from orchestrator.report.postmortem_record import Postmortem
from orchestrator.store.protocols import OutboxItem
from orchestrator.store.sql import SqlStore
from orchestrator.timeline import TimelineEntry, entry_json

PAGE = 500  # incidents whose actions, postmortems and action items are read in one query

Period = tuple[dt.datetime | None, dt.datetime | None]


async def export_archive(
    store: SqlStore,
    out: IO[bytes],
    clock: Clock,
    *,
    period: Period = (None, None),
    trusted_key: str | None = None,
    progress: Callable[[int], None] | None = None,
    drill_template: str | None = None,
) -> dict[str, Any]:
    """Writes the evidence archive for incidents declared (and alerts received, drill runs
    started) in `period`; returns its manifest but for "chain_heads" and "files", which grow
    with the incidents and are only in the archive. Nothing is loaded whole: incidents and
    alerts come page by page, and what incidents.csv and the manifest need of each incident is
    spooled. Drill runs are few: their reports are rendered, with `drill_template` (the
    Markdown after-action report template, needed when there are drill runs), before anything
    is written, so a report that does not render leaves no half-written archive."""
    drills = await _drill_reports(store, period, drill_template)
    checkpoints = await store.list_checkpoints()
    heads, problems = verify_checkpoints(checkpoints, trusted_key)
    verification = Verification(checkpoints=len(checkpoints), problems=problems)
    with (
        SpooledZipWriter(out, "w", compression=zipfile.ZIP_DEFLATED) as zip_file,
        Archive(zip_file) as archive,
        _Register(verification) as register,
    ):
        await _write_alerts(archive, store, period)
        page = _Page(last=0)
        async for incident, entries in store.incidents_with_timelines(*period):
            if incident.number > page.last:  # the next page: one query per table for it
                page = await _read_page(store, first=incident.number)
            verification.chains += 1
            verification.entries += len(entries)
            verification.breaks += verify_incident(
                incident.number, entries, heads.get(incident.number)
            )
            _write_incident(archive, incident, entries, page)
            register.add(incident, entries)
            if progress is not None:
                progress(1)
        register.write(archive)
        for run, report in drills:
            _write_drill(archive, run, report)
        _write_checkpoints(archive, checkpoints)
        archive.write("README.md", iter([readme()]))
        manifest = _manifest(clock, period, register.count, len(drills), verification)
        archive.write_manifest(manifest, {"chain_heads": register.heads})
    return manifest


def _manifest(
    clock: Clock, period: Period, incidents: int, drills: int, verification: Verification
) -> dict[str, Any]:
    """The manifest's fields but the spooled ones (chain_heads, files)."""
    start, end = period
    return {
        "generator": f"incident-orchestrator {version('incident-orchestrator')}",
        "generated_at": clock.now().isoformat(),
        "period": {
            "from": start.isoformat() if start else None,
            "to": end.isoformat() if end else None,
            "incidents_by": "declared_at",
            "alerts_by": "received_at",
            "drills_by": "started_at",
        },
        "counts": {"incidents": incidents, "entries": verification.entries, "drills": drills},
        "verification": verification.as_json(),
        "criteria": CRITERIA,
    }


async def _write_alerts(archive: Archive, store: SqlStore, period: Period) -> None:
    with archive.file("alerts.csv") as put:
        put(csv_line(ALERT_COLUMNS))
        async for record in store.alerts_received(*period):
            put(csv_line(alert_row(record)))


async def _drill_reports(
    store: SqlStore, period: Period, template: str | None
) -> list[tuple[DrillRun, str]]:
    """Each drill run started in the period, with its after-action report rendered."""
    runs = await store.list_drill_runs(*period)
    if not runs:
        return []
    if template is None:
        raise ValueError(
            "the export holds drill runs but no after-action report template was given "
            "(templates/drill-report.md.j2 of the playbooks folder)"
        )
    out = []
    for run in runs:
        items = await store.drill_corrective_actions(run)
        out.append((run, render_drill_report(run, items, template, html=False)))
    return out


def _write_drill(archive: Archive, run: DrillRun, report: str) -> None:
    """drills/<id>/: the scenario as written, the run's record, its after-action report."""
    folder = f"drills/{run.id}"
    archive.write(f"{folder}/scenario.yaml", iter([run.scenario]))
    archive.write(
        f"{folder}/run.json",
        iter([json.dumps(drill_run_record(run), indent=2, sort_keys=True) + "\n"]),
    )
    archive.write(f"{folder}/report.md", iter([report]))


def _write_checkpoints(archive: Archive, checkpoints: list[Checkpoint]) -> None:
    archive.write(
        "checkpoints.jsonl",
        (json.dumps(cp.as_json(), sort_keys=True) + "\n" for cp in checkpoints),
    )


@dataclass
class _Page:
    """What the incidents numbered up to `last` from the page's first need beyond their
    chains, read with one query per table."""

    last: int
    actions: dict[int, list[OutboxItem]] = field(default_factory=dict)
    postmortems: dict[int, Postmortem] = field(default_factory=dict)
    items: dict[int, list[ActionItem]] = field(default_factory=dict)


async def _read_page(store: SqlStore, first: int) -> _Page:
    last = first + PAGE - 1
    items: dict[int, list[ActionItem]] = {}
    for item in await store.list_action_items(between=(first, last)):
        items.setdefault(item.incident_number, []).append(item)
    return _Page(
        last=last,
        actions=await store.actions_between(first, last),
        postmortems=await store.list_postmortems(between=(first, last)),
        items=items,
    )


def _write_incident(
    archive: Archive, incident: Incident, entries: list[TimelineEntry], page: _Page
) -> None:
    """incidents/<n>/: the chain, the notifications, the playbook record, the follow-up."""
    number = incident.number
    archive.write(
        f"incidents/{number}/timeline.jsonl",
        (json.dumps(entry_json(e), sort_keys=True) + "\n" for e in entries),
    )
    actions = page.actions.get(number, [])
    archive.write(
        f"incidents/{number}/notifications.csv",
        csv_rows(NOTIFICATION_COLUMNS, (notification_row(item) for item in actions)),
    )
    archive.write(
        f"incidents/{number}/playbook.json",
        iter([json.dumps(playbook_record(incident, entries, actions), indent=2)]),
    )
    _follow_up(archive, number, page.postmortems.get(number), page.items.get(number, []))


class _Register:
    """incidents.csv, a row per incident as it comes, spooled (a zip member cannot be written
    while another is) and checked for gaps on the way; and each chain's head for the manifest."""

    def __init__(self, verification: Verification) -> None:
        self.verification = verification
        self.rows = Spool()
        self.heads = SpooledObject()  # "number": the hash of the chain's newest entry, or ""
        self.count = 0
        self._previous: int | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.rows.close()
        self.heads.close()

    def add(self, incident: Incident, entries: list[TimelineEntry]) -> None:
        number = incident.number
        gap = register_gap(self._previous, number) if self._previous is not None else None
        if gap is not None:
            self.verification.problems.append(gap)
        self._previous = number
        row = register_row(incident, entries)
        self.rows.write(csv_line(row))
        self.heads.add(str(number), row[-1])
        self.count += 1

    def write(self, archive: Archive) -> None:
        with archive.file("incidents.csv") as put:
            put(csv_line(REGISTER_COLUMNS))
            for chunk in self.rows.chunks():
                put(chunk)


def _follow_up(
    archive: Archive, number: int, postmortem: Postmortem | None, items: list[ActionItem]
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
            csv_rows(ACTION_ITEM_COLUMNS, (action_item_row(item) for item in items)),
        )
