"""`orchestrator drill`, driven with typer's CliRunner against a temporary SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import Cli

from orchestrator.drill.scenario import scenario_json_schema

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
FAILOVER = PLAYBOOKS / "drills" / "db-failover-peak.yaml"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.chdir(tmp_path)
    return Cli(tmp_path / "drills.db")


def test_validate_accepts_the_shipped_scenarios_and_places_each_problem(
    cli: Cli, tmp_path: Path
) -> None:
    shipped = sorted(str(p) for p in (PLAYBOOKS / "drills").glob("*.yaml"))
    report = cli.json("drill", "validate", *shipped)
    assert [item["ok"] for item in report] == [True] * len(shipped)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        FAILOVER.read_text().replace(
            'classification: "EXERCISE EXERCISE EXERCISE"', "classification: DRILL"
        )
    )
    result = cli("drill", "validate", str(bad))
    assert result.exit_code == 2
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if "DRILL" in text)
    assert f'bad.yaml:{line}:17: classification: must contain "EXERCISE"' in result.stderr


def test_schema_is_the_published_one(cli: Cli) -> None:
    result = cli("drill", "schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == scenario_json_schema()


def test_run_list_report_and_controls(cli: Cli, tmp_path: Path) -> None:
    played = cli.json("drill", "run", str(FAILOVER))
    assert played["id"] == "db-failover-peak-1"
    assert played["state"] == "ended"
    assert played["score"] == {"points": 13, "max": 14}

    shown = cli("drill", "run", str(FAILOVER))
    assert shown.exit_code == 0, shown.output
    assert "db-failover-peak-2: expected actions" in shown.stdout
    assert "EXERCISE EXERCISE EXERCISE" in shown.stdout
    assert "orchestrator drill report db-failover-peak-2" in shown.stdout

    runs = cli.json("drill", "list")
    assert [(r["id"], r["mode"], r["state"]) for r in runs] == [
        ("db-failover-peak-1", "simulated", "ended"),
        ("db-failover-peak-2", "simulated", "ended"),
    ]
    # The drill's incidents are in the register, flagged.
    incidents = cli.json("incidents", "list")
    assert {i["number"] for i in incidents} == {1, 2}
    assert all(i["is_drill"] for i in incidents)

    report = cli("drill", "report", "db-failover-peak-1")
    assert report.exit_code == 0
    assert "customer-update" in report.stdout
    html = tmp_path / "report.html"
    written = cli("drill", "report", "db-failover-peak-1", "--format", "html", "--out", str(html))
    assert written.exit_code == 0
    assert "<html" in html.read_text()

    # The corrective action is tracked like any other action item.
    items = cli.json("actions", "list")
    assert [item["incident_number"] for item in items] == [1, 2]

    ended = cli("drill", "pause", "db-failover-peak-1")
    assert ended.exit_code == 1
    assert "has already ended" in ended.stderr
    unknown = cli("drill", "endex", "no-such-drill-1")
    assert unknown.exit_code == 1
    assert "no drill run 'no-such-drill-1'" in unknown.stderr
    missing = cli("drill", "report", "no-such-drill-1")
    assert missing.exit_code == 1
