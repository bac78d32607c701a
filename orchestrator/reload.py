"""Reloading the playbooks of a running service (SIGHUP): the new set is loaded and validated
in full first and only then swapped in; a bad edit leaves the running set as it was, and says
why, file:line by file:line."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

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
