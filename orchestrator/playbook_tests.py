"""Runs the test cases playbooks carry through the real pipeline, on an in-memory store."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from orchestrator.clock import ManualClock
from orchestrator.ingest.alert import SourceFormat
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.model import Playbook, PlaybookTest
from orchestrator.playbook.playbookset import PlaybookSet
from orchestrator.store.sql import SqlStore

TEST_START = dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class TestResult:
    playbook: str
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


async def run_case(playbooks: PlaybookSet, owner: Playbook, case: PlaybookTest) -> TestResult:
    """Feeds the case's alerts (as native payloads, `after` apart) and checks `expect`;
    severity and status are those of the incident the last alert went to.

    The whole set is loaded, not just `owner`, so the case also proves match order is right.
    """
    store = SqlStore("sqlite+aiosqlite:///:memory:")
    await store.open()
    try:
        clock = ManualClock(TEST_START)
        pipeline = Pipeline(store, playbooks, clock)
        first_playbook: str | None = None
        last_incident: int | None = None
        for index, alert in enumerate(case.alerts):
            clock.advance(alert.after)
            payload = {
                "labels": alert.labels,
                "annotations": alert.annotations,
                "status": alert.status,
                "starts_at": clock.now().isoformat(),
            }
            report = await pipeline.ingest_bytes(
                json.dumps(payload).encode(), f"test:{index}", format=SourceFormat.NATIVE
            )
            if report.error:
                return TestResult(owner.name, case.name, [f"alert {index + 1}: {report.error}"])
            if index == 0 and report.outcomes:
                first_playbook = report.outcomes[0].playbook
            if report.outcomes and report.outcomes[0].incident_number is not None:
                last_incident = report.outcomes[0].incident_number
        incidents = await store.list_incidents()
        target = await store.get_incident(last_incident) if last_incident else None
        actions = [item.action.name for item in await store.list_actions()]
    finally:
        await store.close()
    expect = case.expect
    failures = []
    if first_playbook != expect.playbook:
        failures.append(f"matched playbook {first_playbook!r}, expected {expect.playbook!r}")
    if expect.incidents is not None and len(incidents) != expect.incidents:
        failures.append(f"opened {len(incidents)} incident(s), expected {expect.incidents}")
    if expect.severity is not None:
        got = target.max_severity.value if target else None
        if got != expect.severity.value:
            failures.append(f"severity {got}, expected {expect.severity.value}")
    if expect.status is not None:
        got_status = target.status.value if target else None
        if got_status != expect.status.value:
            failures.append(f"status {got_status}, expected {expect.status.value}")
    if expect.actions is not None and actions != expect.actions:
        failures.append(f"actions {actions}, expected {expect.actions}")
    return TestResult(owner.name, case.name, failures)


async def run_playbook_tests(playbooks: PlaybookSet) -> list[TestResult]:
    return [
        await run_case(playbooks, playbook, case)
        for playbook in playbooks
        for case in playbook.tests
    ]
