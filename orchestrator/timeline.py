"""Timeline entries: the append-only, hash-chained record every report is computed from."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from orchestrator.incident.model import Actor


class Kind(StrEnum):
    INCIDENT_TRIGGERED = "incident.triggered"
    INCIDENT_ACKNOWLEDGED = "incident.acknowledged"
    INCIDENT_MITIGATED = "incident.mitigated"
    INCIDENT_RESOLVED = "incident.resolved"
    INCIDENT_CLOSED = "incident.closed"
    INCIDENT_DECLINED = "incident.declined"
    INCIDENT_MERGED = "incident.merged"
    INCIDENT_CANCELED = "incident.canceled"
    INCIDENT_REOPENED = "incident.reopened"
    INCIDENT_ACK_TIMED_OUT = "incident.ack_timed_out"
    ALERT_RECEIVED = "alert.received"
    ALERT_RESOLVED = "alert.resolved"
    SEVERITY_CHANGED = "severity.changed"
    COMMANDER_ASSIGNED = "commander.assigned"
    ESCALATED = "incident.escalated"  # a person asked for the next level ahead of schedule
    CORRECTION = "correction"  # points at an earlier entry, says what was wrong and why
    NOTE = "note"
    ACTION_SCHEDULED = "action.scheduled"
    ACTION_SUCCEEDED = "action.succeeded"
    ACTION_FAILED = "action.failed"
    ACTION_RETRYING = "action.retrying"
    TIMER_SCHEDULED = "timer.scheduled"
    TIMER_FIRED = "timer.fired"
    TIMER_CANCELLED = "timer.cancelled"
    TIMER_SKIPPED = "timer.skipped"
    # Follow-up after the incident: the postmortem's text and approval, and its action items.
    POSTMORTEM_UPDATED = "postmortem.updated"
    POSTMORTEM_APPROVED = "postmortem.approved"
    ACTION_ITEM_ADDED = "action_item.added"
    ACTION_ITEM_UPDATED = "action_item.updated"
    ACTION_ITEM_CLOSED = "action_item.closed"


GENESIS_HASH = "0" * 64
# Sorted keys, no spaces, UTF-8 as is: json.dumps(sort_keys=True, separators=(",", ":"),
# ensure_ascii=False) writes the same bytes for everything a timeline holds, in a fifth of the
# time (exponents aside: orjson writes 1e-7 where json writes 1e-07). Datetimes and dataclasses
# are refused, as json refuses them, rather than silently given a format of orjson's choosing.
_CANONICAL = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


@dataclass(frozen=True)
class EntryDraft:
    """What the engine wants written; the store assigns seq and chains the hash."""

    kind: Kind
    actor: Actor
    occurred_at: dt.datetime  # the source's time (alert startsAt, Slack click time...)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TimelineEntry:
    incident_number: int
    seq: int
    kind: Kind
    actor: Actor
    occurred_at: dt.datetime
    recorded_at: dt.datetime  # our receive time
    data: dict[str, Any]
    prev_hash: str
    hash: str


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("timeline timestamps must be timezone-aware")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical_bytes(
    incident_number: int,
    seq: int,
    kind: str,
    actor: Actor,
    occurred_at: dt.datetime,
    recorded_at: dt.datetime,
    data: dict[str, Any],
    prev_hash: str,
) -> bytes:
    """The exact bytes an entry's hash covers: sorted-key compact JSON, UTC microsecond times."""
    body = {
        "incident": incident_number,
        "seq": seq,
        "kind": kind,
        "actor": actor.as_dict(),
        "occurred_at": _iso(occurred_at),
        "recorded_at": _iso(recorded_at),
        "data": data,
        "prev": prev_hash,
    }
    return orjson.dumps(body, option=_CANONICAL)


def chain(
    incident_number: int,
    seq: int,
    draft: EntryDraft,
    recorded_at: dt.datetime,
    prev_hash: str,
) -> TimelineEntry:
    digest = hashlib.sha256(
        canonical_bytes(
            incident_number,
            seq,
            draft.kind.value,
            draft.actor,
            draft.occurred_at,
            recorded_at,
            draft.data,
            prev_hash,
        )
    ).hexdigest()
    return TimelineEntry(
        incident_number=incident_number,
        seq=seq,
        kind=draft.kind,
        actor=draft.actor,
        occurred_at=draft.occurred_at,
        recorded_at=recorded_at,
        data=draft.data,
        prev_hash=prev_hash,
        hash=digest,
    )


def entry_json(entry: TimelineEntry) -> dict[str, Any]:
    """An entry as exported (one JSON line each): everything its hash covers, and the hash."""
    return {
        "incident": entry.incident_number,
        "seq": entry.seq,
        "kind": entry.kind.value,
        "actor": entry.actor.as_dict(),
        "occurred_at": _iso(entry.occurred_at),
        "recorded_at": _iso(entry.recorded_at),
        "data": entry.data,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def entry_from_json(data: dict[str, Any]) -> TimelineEntry:
    """The inverse of entry_json; raises ValueError (or KeyError) on a malformed line."""
    return TimelineEntry(
        incident_number=int(data["incident"]),
        seq=int(data["seq"]),
        kind=Kind(data["kind"]),
        actor=Actor.from_dict(data["actor"]),
        occurred_at=dt.datetime.fromisoformat(data["occurred_at"]),
        recorded_at=dt.datetime.fromisoformat(data["recorded_at"]),
        data=dict(data["data"]),
        prev_hash=str(data["prev_hash"]),
        hash=str(data["hash"]),
    )
