"""Moves recorded alert messages onto the scenario clock: each keeps its spacing from the first,
and every timestamp inside it moves by the same amount, so the replay is the recording, later."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from orchestrator.ingest.alert import AlertStatus, SourceFormat
from orchestrator.ingest.formats.common import parse_rfc3339
from orchestrator.ingest.normalize import NormalizeError, normalize

# Only the dates a recording could hold; a stray string such as "2026" is left alone.
_EARLIEST = dt.datetime(1970, 1, 2, tzinfo=dt.UTC)
_RECEIVED_PLACEHOLDER = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def message_time(raw: bytes, fmt: SourceFormat | None = None) -> dt.datetime:
    """When a message happened by its own account: its latest alert start or end. Raises
    NormalizeError for a message the intake would dead-letter, or one that gives no time of
    its own (the intake would stamp it with its receive time, which a recording has lost)."""
    alerts = normalize(raw, received_at=_RECEIVED_PLACEHOLDER, format=fmt).alerts
    times = [
        a.ends_at if a.status is AlertStatus.RESOLVED and a.ends_at else a.starts_at for a in alerts
    ]
    if not times:
        raise NormalizeError("$", "the message holds no alerts")
    if _RECEIVED_PLACEHOLDER in times:
        raise NormalizeError("starts_at", "a recorded alert needs its own start time to re-time")
    return max(times)


def retimed(
    messages: Sequence[bytes], start: dt.datetime, fmt: SourceFormat | None = None
) -> list[tuple[dt.datetime, bytes]]:
    """(scenario time, message) for each recorded message: the first at `start`, the rest as far
    after it as they were recorded, every timestamp inside shifted alike. In recorded order."""
    times = [message_time(raw, fmt) for raw in messages]
    first = min(times)
    shift = start - first
    return [
        (when + shift, json.dumps(_shifted(json.loads(raw), shift)).encode())
        for when, raw in zip(times, messages, strict=True)
    ]


def _shifted(value: Any, shift: dt.timedelta) -> Any:
    if isinstance(value, dict):
        return {key: _shifted(item, shift) for key, item in value.items()}
    if isinstance(value, list):
        return [_shifted(item, shift) for item in value]
    if isinstance(value, str) and len(value) >= 20 and value[4:5] == "-" and value[10:11] in "Tt ":
        try:
            when = parse_rfc3339(value)
        except ValueError:
            return value
        if when < _EARLIEST:  # Go's zero time: "not ended", not a date to move
            return value
        return (when + shift).isoformat().replace("+00:00", "Z")
    return value
