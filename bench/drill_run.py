"""Simulated drills against the clock: each shipped scenario played through the real pipeline,
playbooks, timers and dispatcher, end to end, several times over; prints scenario time played,
wall time taken and the speed-up.

    .venv/bin/python bench/drill_run.py [--runs 5] [--database-url URL --reset]

Time is measured with the process clock that timing is for (time.perf_counter); the drill
itself runs on its own simulated clock, as `orchestrator drill run` does.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from databases import reset_postgres
from machine import cpu_line

from handlers.recording import RecordingHandler
from orchestrator.drill.loader import load_scenario
from orchestrator.drill.runner import DrillRunner
from orchestrator.drill.safety import SafetyGuard
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[1]
PLAYBOOKS = REPO / "playbooks"


async def play_once(url: str, path: Path) -> tuple[float, float, int]:
    """(scenario seconds, wall seconds, log lines) of one run into the store at `url`."""
    loaded = load_scenario(path)
    playbooks = load_playbooks(PLAYBOOKS, known_actions=ACTION_NAMES)
    sandbox = RecordingHandler(ACTION_NAMES)
    guard = SafetyGuard(dict.fromkeys(ACTION_NAMES, sandbox), loaded.scenario.safety, enforce=False)
    store = SqlStore(url)
    await store.open()
    try:
        runner = DrillRunner(loaded, store, playbooks, dict.fromkeys(ACTION_NAMES, guard))
        began = time.perf_counter()
        await runner.play()
        took = time.perf_counter() - began
    finally:
        await store.close()
    return loaded.scenario.duration.total_seconds(), took, len(runner.log)


async def main(args: argparse.Namespace) -> None:
    print(f"machine   {cpu_line()}")
    with tempfile.TemporaryDirectory() as scratch:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(scratch) / 'drills.db'}"
        if args.reset:
            reset_postgres(url)
        print(f"store     {url.split(':', 1)[0]}")
        print(f"{'scenario':32} {'played':>8} {'wall p50':>9} {'max':>7} {'speed-up':>9} lines")
        for path in sorted((PLAYBOOKS / "drills").glob("*.yaml")):
            runs = [await play_once(url, path) for _ in range(args.runs)]
            played = runs[0][0]
            walls = [wall for _, wall, _ in runs]
            median = statistics.median(walls)
            print(
                f"{path.stem:32} {played / 60:>6.0f} m {median:>8.3f}s {max(walls):>6.3f}s "
                f"{played / median:>8.0f}x {runs[0][2]:>5}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url", help="a PostgreSQL test database (default: SQLite)")
    parser.add_argument("--reset", action="store_true", help="empty the PostgreSQL test database")
    asyncio.run(main(parser.parse_args()))
