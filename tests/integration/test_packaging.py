"""`pip install` builds a wheel with both packages, the `orchestrator` command, the migrations
the store runs, and the shipped playbooks, templates and drills, which `playbooks init` copies
out of an installation."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from typer.testing import CliRunner

from orchestrator import __version__
from orchestrator.cli import app

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_what_an_installation_needs(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("incident_orchestrator-*.whl")
    assert f"-{__version__}-" in wheel.name
    names = set(zipfile.ZipFile(wheel).namelist())
    data = f"incident_orchestrator-{__version__}.data/data/share/incident-orchestrator/playbooks"
    expected = {
        "orchestrator/cli/__init__.py",
        "handlers/slack.py",
        "orchestrator/py.typed",
        "orchestrator/store/migrations/env.py",
        "orchestrator/store/migrations/versions/0001_initial.py",
        "orchestrator/store/migrations/versions/0008_trace_context.py",
        f"{data}/20-database-unavailable.yaml",
        f"{data}/templates/postmortem.md.j2",
        f"{data}/templates/drill-report.html.j2",
        f"{data}/drills/db-failover-peak.yaml",
        f"{data}/drills/recordings/orders-db-failover.jsonl",
    }
    assert expected <= names, sorted(expected - names)
    assert not any(name.startswith(("tests/", "bench/")) for name in names)
    entry_points = (
        zipfile.ZipFile(wheel)
        .read(f"incident_orchestrator-{__version__}.dist-info/entry_points.txt")
        .decode()
    )
    assert "orchestrator = orchestrator.cli:main" in entry_points


def test_playbooks_init_copies_the_shipped_set(tmp_path: Path) -> None:
    target = tmp_path / "ours"
    result = CliRunner().invoke(app, ["playbooks", "init", str(target)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in target.glob("*.yaml")) == sorted(
        p.name for p in (REPO / "playbooks").glob("*.yaml")
    )
    assert (target / "templates" / "drill-report.md.j2").is_file()
    assert (target / "drills" / "recordings" / "eu-alert-storm.jsonl").is_file()
    again = CliRunner().invoke(app, ["playbooks", "init", str(target)])
    assert again.exit_code == 2
