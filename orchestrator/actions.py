"""Actions: what a decision asks the outside world to do, the handler seam, and the dispatcher."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Delivered:
    """An earlier action of the same incident that was delivered, and what its handler returned
    (a channel id, a dedup key): how later actions find what earlier ones created."""

    name: str
    key: str
    result: Mapping[str, Any]


@dataclass(frozen=True)
class Action:
    """One side effect, rendered and ready to deliver.

    `key` is deterministic (`<incident>:<cycle>:<step>:<index>`), so a replayed decision enqueues
    nothing new and vendors can deduplicate on it (PagerDuty's dedup_key, the recorded channel id).
    """

    key: str
    name: str
    params: dict[str, Any]
    incident_number: int
    is_drill: bool = False
    drill_id: str | None = None  # delivered only by this drill's runner, never by the service
    trace: str | None = None  # W3C traceparent of the work that decided it
    # Filled by the dispatcher at delivery, oldest first; never stored with the action.
    history: tuple[Delivered, ...] = ()

    @property
    def lane(self) -> str:
        """The system it goes to ("slack", "pagerduty"): one incident's actions in a lane are
        delivered in order, so a post never overtakes the channel it goes to."""
        return self.name.split(".", 1)[0]

    def latest_result(self, name: str, field_name: str) -> Any:
        """`field_name` from the newest delivered `name` action that returned it, else None."""
        for delivered in reversed(self.history):
            if delivered.name == name and field_name in delivered.result:
                return delivered.result[field_name]
        return None


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    detail: str = ""
    retryable: bool = False
    retry_after: float | None = None  # seconds the vendor asked us to wait (Retry-After)
    data: dict[str, Any] = field(default_factory=dict)  # e.g. the channel id a handler created

    @classmethod
    def success(cls, detail: str = "", **data: Any) -> ActionResult:
        return cls(ok=True, detail=detail, data=data)

    @classmethod
    def failure(
        cls, detail: str, *, retryable: bool = False, retry_after: float | None = None
    ) -> ActionResult:
        return cls(ok=False, detail=detail, retryable=retryable, retry_after=retry_after)


class ActionHandler(Protocol):
    """Delivers actions to one external system; vendor errors come back as failures, not raises."""

    @property
    def name(self) -> str: ...

    @property
    def handles(self) -> frozenset[str]:
        """Action names this handler delivers, e.g. {"slack.post", "slack.open_channel"}."""
        ...

    async def deliver(self, action: Action) -> ActionResult: ...
