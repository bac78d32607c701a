"""A period's evidence register stays gap-free with simulated drills in it: their incidents
count when the run was held, not at the scenario times they are declared at."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

from playing import PLAYBOOKS, runner_for
from samples import db_alert

from orchestrator.clock import ManualClock
from orchestrator.drill.loader import load_scenario
from orchestrator.evidence import verify_archive
from orchestrator.evidence_export import export_archive
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.store.sql import SqlStore

REPORT = (PLAYBOOKS / "templates" / "drill-report.md.j2").read_text()
REPO = PLAYBOOKS.parent


async def test_a_simulated_drill_between_real_incidents_leaves_no_gap(
    store: SqlStore, tmp_path: Path
) -> None:
    """A simulated drill's incidents are declared at scenario times (here months earlier);
    they count in the period the run was held in, so the register has no hole."""
    held = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
    clock = ManualClock(held)
    playbooks = load_playbooks(REPO / "playbooks", known_actions=ACTION_NAMES)
    real = Pipeline(store, playbooks, clock)
    await real.ingest_bytes(db_alert("orders-db", starts_at=held), "real")
    loaded = load_scenario(REPO / "playbooks" / "drills" / "db-failover-peak.yaml")
    runner, _ = runner_for(store, loaded)
    runner.wall = ManualClock(held + dt.timedelta(minutes=1))
    run = await runner.play()
    clock.advance(dt.timedelta(minutes=2))
    await real.ingest_bytes(db_alert("billing-db", starts_at=clock.now()), "real")
    (drilled,) = await store.drill_incidents(run.id)
    assert drilled.number == 2
    assert drilled.declared_at < held - dt.timedelta(days=200)  # scenario time: March

    path = tmp_path / "november.zip"
    period = (dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    with path.open("wb") as sink:
        manifest = await export_archive(
            store, sink, ManualClock(held), period=period, drill_template=REPORT
        )
    assert manifest["verification"]["problems"] == []
    assert manifest["counts"] == {
        "incidents": 3,
        "entries": manifest["counts"]["entries"],
        "drills": 1,
    }
    with zipfile.ZipFile(path) as archive:
        register = list(csv.DictReader(io.StringIO(archive.read("incidents.csv").decode())))
    assert [(r["number"], r["is_drill"], r["drill_id"]) for r in register] == [
        ("1", "False", ""),
        ("2", "True", run.id),
        ("3", "False", ""),
    ]
    assert verify_archive(path).ok

    march = tmp_path / "march.zip"
    with march.open("wb") as sink:
        manifest = await export_archive(
            store,
            sink,
            ManualClock(held),
            period=(dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 4, 1, tzinfo=dt.UTC)),
            drill_template=REPORT,
        )
    assert manifest["counts"]["incidents"] == 0
