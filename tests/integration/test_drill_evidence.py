"""Drill runs in the evidence archive: each run started in the period gets drills/<id>/ with the
scenario as written, the run's record and its after-action report, all in the manifest, and
the archive still verifies offline."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from samples import CLEAN_ENV, db_alert
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.clock import ManualClock
from orchestrator.drill.record import DrillRun, LogLine, Mode, RunState, Score
from orchestrator.evidence import take_checkpoint, verify_archive
from orchestrator.evidence_export import export_archive
from orchestrator.evidence_files import CRITERIA
from orchestrator.incident.model import Actor, ActorKind
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.report.action_items import ActionItemType
from orchestrator.report.checkpoints import public_hex, signing_key
from orchestrator.store.postmortems import NewActionItem
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[2]
REPORT = (REPO / "playbooks" / "templates" / "drill-report.md.j2").read_text()
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
CLOCK_START = dt.datetime(2026, 3, 2, 18, 30, tzinfo=dt.UTC)
KEY = signing_key("42" * 32)
PUBLIC = public_hex(KEY)
FACILITATOR = Actor(ActorKind.CLI, "fatima", "Fatima Haddad")
SCENARIO = """\
id: db-failover
title: Primary database lost at the evening peak
classification: EXERCISE EXERCISE EXERCISE
objectives:
  - id: command
    text: Establish command and mitigate
    controls: [SOC2:CC7.4]
    expected: [ack]
# (the rest as written, comments and all)
"""


def new_run(started_at: dt.datetime) -> DrillRun:
    return DrillRun(
        id="",  # the store numbers the scenario's runs
        scenario_id="db-failover",
        title="Primary database lost at the evening peak",
        scenario_sha256=hashlib.sha256(SCENARIO.encode()).hexdigest(),
        scenario=SCENARIO,
        mode=Mode.SIMULATED,
        state=RunState.RUNNING,
        started_at=started_at,
        clock_start=CLOCK_START,
    )


def result_of(run_id: str, incident: int, item: int) -> dict[str, Any]:
    ack = Score("ack", "acknowledge", "incident-commander", 300, 420, False, 1, 2, True)
    return {
        "scenario": {
            "id": "db-failover",
            "title": "Primary database lost at the evening peak",
            "classification": "EXERCISE EXERCISE EXERCISE",
            "description": "",
        },
        "participants": {
            "facilitator": "Fatima Haddad",
            "players": {"incident-commander": "Ben Okafor"},
            "unavailable": [],
        },
        "clock": {"start": CLOCK_START.isoformat(), "speed": None, "duration": 1800.0},
        "incidents": [incident],
        "log": [
            LogLine(0, CLOCK_START.isoformat(), "inject", "alert PostgresDown firing").as_json(),
            LogLine(420, "", "response", "Ben Okafor acknowledged", "ack").as_json(),
        ],
        "observations": [],
        "scores": [ack.as_json()],
        "objectives": [
            {
                "id": "command",
                "text": "Establish command and mitigate",
                "controls": ["SOC2:CC7.4"],
                "expected": ["ack"],
                "rating": "not met",
            }
        ],
        "score": {"points": 1, "max": 2},
        "playbooks": {"pages": 1, "channels": 1, "escalations": 0, "refused": 0},
        "refusals": [],
        "questions": ["Who takes command when the commander is paged late?"],
        "corrective_actions": [item],
        "endex": {"at": "2026-03-02T19:00:00+00:00", "offset": 1800.0, "by": "schedule"},
    }


async def test_drill_runs_are_in_the_archive(store: SqlStore, tmp_path: Path) -> None:
    clock = ManualClock(T0)
    playbooks = load_playbooks(REPO / "playbooks", known_actions=ACTION_NAMES)
    real = Pipeline(store, playbooks, clock)
    await real.ingest_bytes(db_alert("orders-db", starts_at=T0), "test")
    clock.advance(dt.timedelta(minutes=5))
    run = await store.start_drill_run(new_run(clock.now()))
    assert run.id == "db-failover-1"
    drill = Pipeline(store, playbooks, clock, drill_id=run.id)
    await drill.ingest_bytes(db_alert("orders-db", starts_at=clock.now()), "drill")
    incidents = await store.drill_incidents(run.id)
    assert [i.number for i in incidents] == [2]
    fix = NewActionItem(
        "Drill db-failover-1: acknowledge by incident-commander was late (deadline +5m)",
        "Ben Okafor",
        dt.date(2026, 3, 16),
        ActionItemType.PROCESS,
    )
    item = await store.add_action_item(2, fix, FACILITATOR, clock.now())
    await store.save_drill_result(
        run.id, result_of(run.id, 2, item.id), ended_at=clock.now() + dt.timedelta(minutes=3)
    )
    # A run started after the period is left out.
    later = await store.start_drill_run(new_run(T0 + dt.timedelta(days=3)))
    await take_checkpoint(store, KEY, clock)

    path = tmp_path / "evidence.zip"
    period = (T0, T0 + dt.timedelta(days=1))
    with path.open("wb") as sink:
        manifest = await export_archive(
            store, sink, clock, period=period, trusted_key=PUBLIC, drill_template=REPORT
        )
    assert manifest["verification"]["ok"], manifest["verification"]
    assert manifest["counts"]["drills"] == 1
    assert manifest["period"]["drills_by"] == "started_at"

    folder = f"drills/{run.id}"
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        listed = json.loads(archive.read("manifest.json"))
        scenario = archive.read(f"{folder}/scenario.yaml")
        record = json.loads(archive.read(f"{folder}/run.json"))
        report = archive.read(f"{folder}/report.md").decode()
        readme = archive.read("README.md").decode()
        register = list(csv.DictReader(io.StringIO(archive.read("incidents.csv").decode())))
        hashes = {name: hashlib.sha256(archive.read(name)).hexdigest() for name in names}
    drill_files = {f"{folder}/{name}" for name in ("scenario.yaml", "run.json", "report.md")}
    assert drill_files <= names
    assert not any(name.startswith(f"drills/{later.id}/") for name in names)
    for name in drill_files:
        assert listed["files"][name]["sha256"] == hashes[name]
    assert set(listed["files"]) == names - {"manifest.json"}

    # The scenario exactly as stored; run.json's hash is its SHA-256.
    assert scenario == SCENARIO.encode()
    assert record["scenario_sha256"] == hashlib.sha256(scenario).hexdigest()
    assert hashes[f"{folder}/scenario.yaml"] == record["scenario_sha256"]
    assert {key: record[key] for key in ("id", "scenario_id", "mode", "state")} == {
        "id": "db-failover-1",
        "scenario_id": "db-failover",
        "mode": "simulated",
        "state": "ended",
    }
    assert record["title"] == "Primary database lost at the evening peak"
    assert dt.datetime.fromisoformat(record["started_at"]) == T0 + dt.timedelta(minutes=5)
    assert dt.datetime.fromisoformat(record["ended_at"]) == T0 + dt.timedelta(minutes=8)
    assert dt.datetime.fromisoformat(record["clock_start"]) == CLOCK_START
    assert record["result"] == result_of(run.id, 2, item.id)

    # The after-action report, from the shipped template, with the corrective action.
    assert report.startswith("**EXERCISE EXERCISE EXERCISE**")
    assert report.rstrip().endswith("**EXERCISE EXERCISE EXERCISE**")
    assert "# After-action report: Primary database lost at the evening peak" in report
    assert "| ack: acknowledge | incident-commander (Ben Okafor) | +5m (18:35:00) " in report
    assert "| +7m (18:37:00) | late by 2m, contingency fired | 1 / 2 |" in report
    assert f"| {item.id} | {fix.title} | Ben Okafor | 2026-03-16 | open |" in report

    # The criteria, in the manifest and the README.
    for name, criteria in (
        ("drills/<id>/scenario.yaml", "CC7.5 (exercise design)"),
        ("drills/<id>/run.json", "CC7.4, CC7.5"),
        ("drills/<id>/report.md", "CC7.5"),
    ):
        assert CRITERIA[name] == criteria
        assert listed["criteria"][name] == criteria
        assert f"| `{name}` | {criteria} |" in readme

    # The register still holds every incident, the drill's flagged with its run.
    assert [(row["number"], row["is_drill"], row["drill_id"]) for row in register] == [
        ("1", "False", ""),
        ("2", "True", "db-failover-1"),
    ]

    # And the archive verifies offline, by the function and by `evidence verify`.
    result = verify_archive(path, PUBLIC)
    assert result.ok, (result.breaks, result.problems)
    assert result.chains == 2
    verified = CliRunner(env=CLEAN_ENV).invoke(
        app, ["evidence", "verify", "--archive", str(path), "--public-key", PUBLIC, "--json"]
    )
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["ok"]


async def test_a_drill_report_template_can_be_given(store: SqlStore, tmp_path: Path) -> None:
    """The caller may pass the template text (its playbooks folder's, say); without drill runs
    in the period there is no drills/ folder at all."""
    run = await store.start_drill_run(new_run(T0))
    clock = ManualClock(T0)
    path = tmp_path / "given.zip"
    with path.open("wb") as sink:
        await export_archive(
            store, sink, clock, drill_template="{{ banner }} {{ run.id }} {{ score.max }}\n"
        )
    with zipfile.ZipFile(path) as archive:
        assert archive.read(f"drills/{run.id}/report.md") == b"EXERCISE db-failover-1 0\n"
    empty = tmp_path / "empty.zip"
    with empty.open("wb") as sink:
        manifest = await export_archive(
            store, sink, clock, period=(T0 + dt.timedelta(days=1), None)
        )
    assert manifest["counts"]["drills"] == 0
    with zipfile.ZipFile(empty) as archive:
        assert not any(name.startswith("drills/") for name in archive.namelist())
    assert verify_archive(empty).ok


@pytest.mark.parametrize("name", ["scenario.yaml", "run.json", "report.md"])
async def test_a_changed_drill_file_fails_verification(
    store: SqlStore, tmp_path: Path, name: str
) -> None:
    run = await store.start_drill_run(new_run(T0))
    path = tmp_path / "drill.zip"
    with path.open("wb") as sink:
        await export_archive(store, sink, ManualClock(T0), drill_template=REPORT)
    tampered = tmp_path / "tampered.zip"
    member = f"drills/{run.id}/{name}"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            target.writestr(item, data + b"\n" if item == member else data)
    problems = verify_archive(tampered).problems
    assert f"{member}: its SHA-256 differs from the manifest's" in problems
