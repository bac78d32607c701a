"""The `orchestrator` command run in-process, as the CLI tests drive it: on a database file,
with a playbook folder (the shipped one unless given, or named for one call), in the pinned
environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import Result
from samples import CLEAN_ENV
from typer.testing import CliRunner

from orchestrator.cli import app

PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"


class Cli:
    def __init__(self, db: Path, playbooks: Path = PLAYBOOKS) -> None:
        self.url = f"sqlite+aiosqlite:///{db}"
        self.playbooks = playbooks
        self.runner = CliRunner(env=CLEAN_ENV)

    def __call__(
        self, *args: str, stdin: bytes | str | None = None, playbooks: Path | None = None
    ) -> Result:
        folder = playbooks or self.playbooks
        argv = ["--db", self.url, "--playbooks", str(folder), *args]
        return self.runner.invoke(app, argv, input=stdin)

    def ok(self, *args: str, playbooks: Path | None = None) -> Result:
        """The command's result, after asserting it succeeded."""
        result = self(*args, playbooks=playbooks)
        assert result.exit_code == 0, result.output + result.stderr
        return result

    def json(self, *args: str, playbooks: Path | None = None) -> Any:
        """What the command printed with --json, after asserting it succeeded."""
        return json.loads(self.ok(*args, "--json", playbooks=playbooks).stdout)
