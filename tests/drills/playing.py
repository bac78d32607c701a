"""Running a scenario the way `orchestrator drill run` does, against a test's store."""

from __future__ import annotations

from pathlib import Path

from handlers.recording import RecordingHandler
from orchestrator.clock import Clock
from orchestrator.drill.loader import LoadedScenario, load_scenario, parse_scenario
from orchestrator.drill.record import DrillRun
from orchestrator.drill.runner import DrillRunner
from orchestrator.drill.safety import SafetyGuard
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
SHIPPED = sorted((PLAYBOOKS / "drills").glob("*.yaml"))


class Played:
    def __init__(self, run: DrillRun, runner: DrillRunner, sandbox: RecordingHandler) -> None:
        self.run = run
        self.runner = runner
        self.sandbox = sandbox

    @property
    def outcomes(self) -> dict[str, str]:
        return {score["id"]: score["outcome"] for score in self.run.result["scores"]}

    def log(self, kind: str) -> list[str]:
        return [line.text for line in self.runner.log if line.kind == kind]


def runner_for(
    store: SqlStore,
    loaded: LoadedScenario,
    *,
    live: bool = False,
    clock: Clock | None = None,
    poll: float = 1.0,
) -> tuple[DrillRunner, RecordingHandler]:
    sandbox = RecordingHandler(ACTION_NAMES)
    guard = SafetyGuard(dict.fromkeys(ACTION_NAMES, sandbox), loaded.scenario.safety, enforce=live)
    playbooks = load_playbooks(PLAYBOOKS, known_actions=ACTION_NAMES)
    runner = DrillRunner(
        loaded,
        store,
        playbooks,
        dict.fromkeys(ACTION_NAMES, guard),
        clock=clock,
        live=live,
        poll=poll,
    )
    guard.on_refusal = lambda action, reason: runner.refused(action.name, reason, live)
    return runner, sandbox


async def play(
    store: SqlStore,
    scenario: Path | str,
    *,
    live: bool = False,
    clock: Clock | None = None,
    poll: float = 1.0,
) -> Played:
    """`scenario` is a shipped file, or the text of one (recordings relative to drills/)."""
    if isinstance(scenario, Path):
        loaded = load_scenario(scenario)
    else:
        loaded = parse_scenario(scenario, "scenario.yaml", PLAYBOOKS / "drills")
    runner, sandbox = runner_for(store, loaded, live=live, clock=clock, poll=poll)
    return Played(await runner.play(), runner, sandbox)


SMALL_HEADER = """
id: small-drill
title: Orders database down
objectives:
  - {id: respond, text: Someone acknowledges, controls: ["SOC2:CC7.4"]}
roles:
  facilitator: Dana
  players: {primary: Ana, secondary: Ben}
clock: {start: "2026-03-02T18:30:00Z"}
safety: {slack_channels: ["#sre-drills"], pagerduty_services: [drill-sandbox]}
injects:
  - id: down
    at: 0s
    alert:
      labels:
        alertname: PostgresDown
        env: prod
        service: orders-db
        cluster: eu-west-1
        severity: critical
"""


def small_scenario(body: str = "", duration: str = "1h", injects: str = "") -> str:
    """A scenario around one database alert: `injects` join the alert inject, `body` comes
    after the duration (expected actions, script)."""
    return SMALL_HEADER + injects + f"duration: {duration}\n" + body
