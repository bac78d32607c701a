"""The recording handler: keeps every action it is given, and can be scripted to fail, for tests."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from orchestrator.actions import Action, ActionResult


class RecordingHandler:
    """A real handler that records instead of sending.

    `script` maps an action name to results returned in order before falling back to success,
    e.g. {"slack.post": [ActionResult.failure("429", retryable=True, retry_after=30)]}.
    """

    name = "recording"

    def __init__(
        self,
        handles: Iterable[str],
        script: dict[str, list[ActionResult]] | None = None,
    ) -> None:
        self._handles = frozenset(handles)
        self._script = {name: deque(results) for name, results in (script or {}).items()}
        self.attempts: list[Action] = []
        self.delivered: list[Action] = []

    @property
    def handles(self) -> frozenset[str]:
        return self._handles

    def then(self, action_name: str, *results: ActionResult) -> None:
        """Queues more scripted results for `action_name`, e.g. a fault staged mid-test."""
        self._script.setdefault(action_name, deque()).extend(results)

    def forget(self, action_name: str) -> None:
        """Drops the results still queued for `action_name`: it succeeds from now on."""
        self._script.pop(action_name, None)

    async def deliver(self, action: Action) -> ActionResult:
        self.attempts.append(action)
        queued = self._script.get(action.name)
        result = queued.popleft() if queued else ActionResult.success("recorded")
        if result.ok:
            self.delivered.append(action)
        return result

    def names(self) -> list[str]:
        return [action.name for action in self.delivered]
