"""The dry-run handler: prints each action instead of delivering it, clearly labelled as such."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from orchestrator.actions import Action, ActionResult


class ConsoleHandler:
    """Stands in for every vendor when no credentials are configured.

    Nothing leaves the machine; each action is printed with a DRY-RUN label and succeeds, so the
    rest of the flow (timeline, outbox, retries) behaves exactly as in production.
    """

    name = "console"

    def __init__(self, handles: Iterable[str], write: Callable[[str], None] | None = None) -> None:
        self._handles = frozenset(handles)
        self._write = write

    @property
    def handles(self) -> frozenset[str]:
        return self._handles

    async def deliver(self, action: Action) -> ActionResult:
        if self._write is not None:
            # The incident snapshot every action carries would drown the line.
            shown = {k: v for k, v in action.params.items() if k != "incident"}
            params = json.dumps(shown, ensure_ascii=False, sort_keys=True)
            self._write(f"[DRY-RUN] #{action.incident_number} {action.name} {params}")
        data: dict[str, str] = {"dry_run": "true"}
        if action.name == "slack.open_channel":
            data["channel"] = "#" + str(action.params.get("name", ""))
        return ActionResult.success("dry run: not sent", **data)
