"""Actions: what a decision asks the outside world to do, the handler seam, and the dispatcher."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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
