"""Reloading the playbooks of a running service (SIGHUP, or a change in the folder): the new
set is loaded and validated in full first and only then swapped in; a bad edit leaves the
running set as it was, and says why, file:line by file:line."""

from __future__ import annotations

import asyncio
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


class Reloader:
    """A service's reloads, whether SIGHUP or the folder watch asked: one at a time, since two
    at once would race to swap their sets in."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._lock = asyncio.Lock()
        self._seen: tuple[tuple[str, int, int], ...] | None = None
        self._running: set[asyncio.Task[Reload]] = set()

    async def reload(self) -> Reload:
        async with self._lock:
            return await reload_playbooks(self.app)

    def in_background(self) -> None:
        """What SIGHUP does: a reload as a task of its own, failures logged, never raised into
        the service."""
        task = asyncio.get_running_loop().create_task(self.reload(), name="playbook-reload")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def reload_if_changed(self) -> Reload | None:
        """One round of the folder watch (ORCH_PLAYBOOKS_WATCH_SECONDS), for deployments that
        update the files in place, a mounted ConfigMap say: a reload when a file changed since
        the last round. The first round only notes how the folder is."""
        now = await asyncio.to_thread(folder_state, self.app.settings.playbooks_dir)
        seen, self._seen = self._seen, now
        if seen is None or seen == now:
            return None
        return await self.reload()
