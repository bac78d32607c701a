"""The live drill's safety net: every action a drill sends to Slack or PagerDuty passes here,
and anything outside the scenario's safety block is refused (and logged), never delivered."""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
from collections.abc import Callable, Mapping

from orchestrator.actions import Action, ActionHandler, ActionResult
from orchestrator.drill.scenario import Safety

log = logging.getLogger(__name__)

REFUSED = "refused by the drill's safety block"
DRILL_CHANNEL_PREFIX = "drill-"


def own_channel(action: Action) -> Action:
    """A drill opens its own channel, named drill-<what the playbook asked for>, so nobody
    mistakes it for a real incident's and the guard can tell it apart."""
    name = str(action.params.get("name") or "")
    if name.startswith(DRILL_CHANNEL_PREFIX):
        return action
    params = {**action.params, "name": DRILL_CHANNEL_PREFIX + (name or f"{action.incident_number}")}
    return dataclasses.replace(action, params=params)


class SafetyGuard:
    """Wraps the handlers a drill delivers through. Slack: the channel a drill opens is its own,
    named drill-…; a post to any other channel by name must match one of
    `safety.slack_channels` (globs such as `#sre-drills`). PagerDuty: a
    page must name a service in `safety.pagerduty_services`; acknowledging, escalating and
    resolving act only on what such pages created. Anything else is delivered unchanged."""

    name = "drill-safety"

    def __init__(
        self,
        inner: Mapping[str, ActionHandler],
        safety: Safety,
        *,
        enforce: bool = True,
        on_refusal: Callable[[Action, str], None] | None = None,
    ) -> None:
        self.inner = dict(inner)
        self.safety = safety
        # A simulated drill delivers into a sandbox anyway: there the guard only reports what
        # a live run would refuse, so the playbooks still play out in full.
        self.enforce = enforce
        self.on_refusal = on_refusal or (lambda action, reason: None)

    @property
    def handles(self) -> frozenset[str]:
        return frozenset(self.inner)

    async def deliver(self, action: Action) -> ActionResult:
        if action.name == "slack.open_channel":
            action = own_channel(action)
        reason = self.refusal(action)
        if reason is not None:
            self.on_refusal(action, reason)
            if self.enforce:
                log.warning(
                    "drill #%s: %s refused: %s", action.incident_number, action.name, reason
                )
                return ActionResult.failure(f"{REFUSED}: {reason}")
        return await self.inner[action.name].deliver(action)

    def refusal(self, action: Action) -> str | None:
        if not action.is_drill:
            return "not a drill action"
        if action.lane == "slack":
            # The drill's own channel (drill-…) is always its to use.
            channel = action.params.get("channel")
            if channel and not self._channel_allowed(str(channel)):
                allowed = ", ".join(self.safety.slack_channels) or "none"
                return f"Slack channel {channel} is not one the drill may use ({allowed})"
        if action.lane == "pagerduty":
            service = action.params.get("service")
            if service and str(service) not in self.safety.pagerduty_services:
                allowed = ", ".join(self.safety.pagerduty_services) or "none"
                return f"PagerDuty service {service} is not one the drill may page ({allowed})"
        return None

    def _channel_allowed(self, channel: str) -> bool:
        name = channel.removeprefix("#")
        return name.startswith(DRILL_CHANNEL_PREFIX) or any(
            fnmatch.fnmatchcase(name, pattern.removeprefix("#"))
            for pattern in self.safety.slack_channels
        )
