"""Reloading the playbooks of a running service (SIGHUP): the new set is loaded and validated
in full first and only then swapped in; a bad edit leaves the running set as it was, and says
why, file:line by file:line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.app import App
from orchestrator.playbook.loader import PlaybookLoadError, Problem, load_playbooks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reload:
    loaded: bool
    playbooks: list[str] = field(default_factory=list)  # "name@version", in match order
    problems: list[Problem] = field(default_factory=list)


async def reload_playbooks(app: App) -> Reload:
    """Loads the playbook folder again (in a thread: parsing and validating templates is CPU
    work the event loop should not wait on) and swaps the set in where it is read: the pipeline
    for new alerts and decisions, the app for everything else. Incidents keep the escalation
    policy they took when they triggered (docs/playbooks.md), whatever the reload changes."""
    folder = app.settings.playbooks_dir
    try:
        fresh = await asyncio.to_thread(
            load_playbooks, folder, known_actions=frozenset(app.handlers)
        )
    except PlaybookLoadError as err:
        for problem in err.problems:
            log.error("playbook reload: %s", problem)
        log.error(
            "playbook reload refused: %d problem(s) in %s; the %d running playbooks stay",
            len(err.problems),
            folder,
            len(app.playbooks),
        )
        return Reload(loaded=False, problems=list(err.problems))
    app.playbooks = fresh
    app.pipeline.playbooks = fresh
    names = [f"{playbook.name}@{playbook.version}" for playbook in fresh]
    log.info("playbooks reloaded from %s: %s", folder, ", ".join(names))
    return Reload(loaded=True, playbooks=names)


def folder_state(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """What an edit changes: every file's path, size and modification time, sorted."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            found.append((str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


async def watch_playbooks(app: App, stop: asyncio.Event, every: float) -> None:
    """Reloads when the playbook folder changes (ORCH_PLAYBOOKS_WATCH_SECONDS), as SIGHUP
    does: for deployments that update files in place, a ConfigMap say."""
    folder = app.settings.playbooks_dir
    seen = await asyncio.to_thread(folder_state, folder)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
        if stop.is_set():
            return
        now = await asyncio.to_thread(folder_state, folder)
        if now != seen:
            seen = now
            await reload_playbooks(app)
