"""The store seam: what the pipeline, dispatcher and CLI need from persistence, nothing more."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from orchestrator.actions import Action, ActionResult, Delivered
from orchestrator.incident.model import Actor, Incident, Status
from orchestrator.timeline import EntryDraft, TimelineEntry
from orchestrator.timers import Timer, TimerStatus

if TYPE_CHECKING:  # postmortem types import this module; only annotations need them here
    from orchestrator.drill.record import DrillRun, RunState
    from orchestrator.report.action_items import ActionItem
    from orchestrator.report.postmortem import Postmortem
    from orchestrator.store.postmortems import NewActionItem

T = TypeVar("T")

__all__ = [
    "AlertRecord",
    "ConcurrentUpdateError",
    "DeadLetter",
    "Disposition",
    "OutboxItem",
    "OutboxStatus",
    "Store",
    "SyncTransaction",
    "Timer",  # re-exported: the store persists timers, so its users find them here too
    "TimerStatus",
    "Transaction",
]


class Disposition(StrEnum):
    """What became of an alert: every alert received has exactly one."""

    OPENED = "opened"  # it opened a new incident
    GROUPED = "grouped"  # it joined an open incident
    REOPENED = "reopened"  # it reopened a recently resolved incident
    RESOLVED = "resolved"  # a resolved alert recorded on its incident
    UNMATCHED = "unmatched"  # no playbook matched
    ORPHANED = "orphaned"  # resolved alert with no incident to resolve
    DUPLICATE = "duplicate"  # seen before (redelivery or resend): nothing new recorded


@dataclass(frozen=True)
class AlertRecord:
    alert_id: str
    source: str
    fingerprint: str
    status: str
    labels: dict[str, str]
    starts_at: dt.datetime
    received_at: dt.datetime
    disposition: Disposition
    playbook: str | None = None
    incident_number: int | None = None


@dataclass(frozen=True)
class DeadLetter:
    origin: str  # where it came from: "file.jsonl:12", "kafka:alerts/3@1042", "http:/v1/alerts"
    error: str  # one line: which field, why
    raw: bytes  # the original bytes, unchanged
    received_at: dt.datetime
    headers: dict[str, str] = field(default_factory=dict)
    id: int | None = None


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the last attempt


@dataclass(frozen=True)
class OutboxItem:
    action: Action
    status: OutboxStatus
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    last_error: str = ""
    delivered_at: dt.datetime | None = None
    result: dict[str, Any] = field(default_factory=dict)


class ConcurrentUpdateError(RuntimeError):
    """The incident changed since it was read; the caller retries the whole decision."""


class Transaction(Protocol):
    """One atomic unit: everything written through it commits together or not at all."""

    async def seen_alerts(self, alert_ids: Sequence[str]) -> set[str]:
        """Which of these alert ids are already recorded, in one query."""
        ...

    async def record_alerts(self, records: Sequence[AlertRecord]) -> None: ...

    async def latest_incident_for_group(self, group_key: str) -> Incident | None:
        """The most recently declared incident with this group key, locked for update."""
        ...

    async def get_incident_for_update(self, number: int) -> Incident | None: ...

    async def allocate_incident_number(self) -> int:
        """Next number, gap-free: a rolled-back transaction gives its number back."""
        ...

    async def insert_incident(self, incident: Incident) -> None: ...

    async def update_incident(self, incident: Incident) -> None:
        """Writes `incident` if the stored revision is `incident.revision - 1`, else raises
        ConcurrentUpdateError."""
        ...

    async def append_timeline(
        self, incident_number: int, drafts: list[EntryDraft], recorded_at: dt.datetime
    ) -> list[TimelineEntry]:
        """Appends in order, assigning seq and chaining each entry's hash to the previous one.

        `recorded_at` is raised to the chain's last receive time if it is earlier, so receive
        times never run backwards along a timeline."""
        ...

    async def enqueue_actions(self, actions: list[Action], now: dt.datetime) -> list[Action]:
        """Adds to the outbox; returns those that were new (a key already present is skipped)."""
        ...

    async def schedule_timers(self, timers: list[Timer]) -> list[Timer]:
        """Returns those that were new (a key already present is skipped)."""
        ...

    async def cancel_timers(
        self, incident_number: int, kinds: frozenset[str] | None, now: dt.datetime
    ) -> list[Timer]:
        """Cancels pending timers of the incident (of these kinds, or all); returns them."""
        ...

    async def mark_timer_fired(self, key: str, now: dt.datetime) -> bool:
        """Marks a pending timer fired; False when it was already fired or cancelled, so a
        timer claimed twice (an expired lease) still fires once."""
        ...

    async def record_dead_letter(self, letter: DeadLetter) -> int: ...


class SyncTransaction(Protocol):
    """The same operations, synchronous: what a function handed to Store.run() receives,
    running in the store's worker thread."""

    def seen_alerts(self, alert_ids: Sequence[str]) -> set[str]:
        """Which of these alert ids are already recorded, in one query."""
        ...

    def record_alerts(self, records: Sequence[AlertRecord]) -> None: ...

    def latest_incident_for_group(self, group_key: str) -> Incident | None:
        """The most recently declared incident with this group key, locked for update."""
        ...

    def get_incident_for_update(self, number: int) -> Incident | None: ...

    def allocate_incident_number(self) -> int:
        """Next number, gap-free: a rolled-back transaction gives its number back."""
        ...

    def insert_incident(self, incident: Incident) -> None: ...

    def update_incident(self, incident: Incident) -> None:
        """Writes `incident` if the stored revision is `incident.revision - 1`, else raises
        ConcurrentUpdateError."""
        ...

    def append_timeline(
        self, incident_number: int, drafts: list[EntryDraft], recorded_at: dt.datetime
    ) -> list[TimelineEntry]:
        """Appends in order, assigning seq and chaining each entry's hash to the previous one.

        `recorded_at` is raised to the chain's last receive time if it is earlier, so receive
        times never run backwards along a timeline."""
        ...

    def queue_actions(self, actions: list[Action], now: dt.datetime) -> None:
        """Like enqueue_actions, written when the transaction commits; keys already in the
        outbox are skipped then."""
        ...

    def queue_timers(self, timers: list[Timer]) -> None:
        """Like schedule_timers, written when the transaction commits."""
        ...

    def enqueue_actions(self, actions: list[Action], now: dt.datetime) -> list[Action]:
        """Adds to the outbox; returns those that were new (a key already present is skipped)."""
        ...

    def schedule_timers(self, timers: list[Timer]) -> list[Timer]:
        """Returns those that were new (a key already present is skipped)."""
        ...

    def cancel_timers(
        self, incident_number: int, kinds: frozenset[str] | None, now: dt.datetime
    ) -> list[Timer]:
        """Cancels pending timers of the incident (of these kinds, or all); returns them."""
        ...

    def mark_timer_fired(self, key: str, now: dt.datetime) -> bool:
        """Marks a pending timer fired; False when it was already fired or cancelled, so a
        timer claimed twice (an expired lease) still fires once."""
        ...

    def pending_timers(self, incident_number: int, kind: str) -> list[Timer]:
        """The incident's pending timers of one kind, soonest first."""
        ...

    def prepare_incidents(self, numbers: Sequence[int]) -> None:
        """Locks these incidents (in number order) and reads ahead what a batch touching all
        of them needs."""
        ...

    def mark_timers_fired(self, keys: Sequence[str], now: dt.datetime) -> set[str]:
        """Marks the pending ones among `keys` fired; returns the keys it marked."""
        ...

    def record_dead_letter(self, letter: DeadLetter) -> int: ...


class Store(Protocol):
    async def open(self) -> None:
        """Connects and brings the schema to the latest migration."""
        ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...

    async def run(self, work: Callable[[SyncTransaction], T]) -> T:
        """Runs `work` in one write transaction in the store's worker thread, in one hop:
        committed if it returns, rolled back if it raises (how the pipeline records a batch)."""
        ...

    # Dispatcher: claim with a lease so that concurrent dispatchers never deliver one item twice
    # at once; a crashed dispatcher's lease expires and another picks the item up. `drill_id`
    # None claims real work only; a drill's runner claims its own drill's and nothing else.
    async def claim_due_actions(
        self, now: dt.datetime, limit: int, lease: dt.timedelta, drill_id: str | None = None
    ) -> list[OutboxItem]: ...

    async def finish_action(
        self,
        key: str,
        result: ActionResult,
        now: dt.datetime,
        retry_at: dt.datetime | None,
        timeline: list[EntryDraft],
    ) -> None:
        """Records one delivery attempt: delivered, retry at `retry_at`, or failed for good when
        `retry_at` is None and the result is not ok; appends `timeline` to the action's incident
        in the same transaction."""
        ...

    async def claim_due_timers(
        self, now: dt.datetime, limit: int, lease: dt.timedelta, drill_id: str | None = None
    ) -> list[Timer]: ...

    async def overdue_timers(self, due_before: dt.datetime) -> tuple[int, dt.datetime | None]:
        """How many pending real (not drill) timers were due before `due_before`, and the
        oldest due time."""
        ...

    async def outbox_backlog(self) -> tuple[int, dt.datetime | None]:
        """How many real actions wait to be delivered, and the oldest one's creation time."""
        ...

    async def next_timer_due(self, drill_id: str | None = None) -> dt.datetime | None:
        """When the earliest pending timer (of the drill, or real) is due; None when none is."""
        ...

    # Reads for the CLI and reports.
    async def get_incident(self, number: int) -> Incident | None: ...

    async def list_incidents(
        self, statuses: frozenset[Status] | None = None, limit: int = 100
    ) -> list[Incident]: ...

    async def timeline(self, incident_number: int) -> list[TimelineEntry]: ...

    async def list_actions(self, incident_number: int | None = None) -> list[OutboxItem]: ...

    async def delivered_actions(self, incident_number: int) -> list[Delivered]:
        """The incident's delivered actions and what their handlers returned, oldest first."""
        ...

    async def get_postmortem(self, incident_number: int) -> Postmortem | None: ...

    async def list_action_items(
        self,
        incident_number: int | None = None,
        owner: str | None = None,
        *,
        open_only: bool = False,
    ) -> list[ActionItem]: ...

    async def add_action_item(
        self, incident_number: int, item: NewActionItem, actor: Actor, now: dt.datetime
    ) -> ActionItem:
        """Adds a corrective action, and an entry on the incident's timeline."""
        ...

    async def incident_for_result(self, action_name: str, field: str, value: str) -> int | None:
        """The incident whose delivered `action_name` returned `field` = `value`, e.g. the
        incident a Slack channel id or a PagerDuty dedup key belongs to; the newest if several."""
        ...

    async def list_alerts(self, incident_number: int | None = None) -> list[AlertRecord]: ...

    async def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]: ...

    async def get_dead_letter(self, letter_id: int) -> DeadLetter | None: ...

    async def set_drill_state(self, run_id: str, state: RunState) -> DrillRun:
        """Pauses, resumes or ends a drill run (its runner picks the change up); raises
        DrillStateError for an unknown run or one that has ended."""
        ...

    async def list_timers(self, incident_number: int | None = None) -> list[Timer]: ...
