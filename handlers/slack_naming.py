"""Channel names Slack accepts, and the client-side pace of channel creation."""

from __future__ import annotations

import math
import re
import unicodedata
from collections import deque

from orchestrator.clock import Clock

MAX_NAME = 80
NOT_ALLOWED = re.compile(r"[^a-z0-9_-]+")
REPEATED_SEPARATORS = re.compile(r"[-_]{2,}")
WINDOW = 60.0  # seconds: Slack's tiers are calls per minute


def channel_name(raw: str, fallback: str) -> str:
    """Slack's rules: lowercase a-z, 0-9, `-` and `_`, at most 80 characters. Accents are
    dropped (`café` → `cafe`), anything else becomes `-`, runs of separators collapse, and a
    name left empty becomes `fallback`."""
    decomposed = unicodedata.normalize("NFKD", raw.lower())
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    name = NOT_ALLOWED.sub("-", bare)
    name = REPEATED_SEPARATORS.sub(lambda run: run.group(0)[0], name)
    name = name.strip("-_")[:MAX_NAME].strip("-_")
    return name or fallback


def with_suffix(name: str, number: int) -> str:
    """`name-2`, `name-3`…, shortening `name` so the result still fits."""
    suffix = f"-{number}"
    return name[: MAX_NAME - len(suffix)].rstrip("-_") + suffix


class CreationPace:
    """At most `per_minute` channel creations in any sliding minute (conversations.create is
    Tier 2, about 20 a minute). Spending the budget here, before Slack answers 429, turns an
    alert storm into queued creations with a known wait instead of a burst of refusals."""

    def __init__(self, per_minute: int, clock: Clock) -> None:
        if per_minute < 1:
            raise ValueError("channel_creations_per_minute must be at least 1")
        self._per_minute = per_minute
        self._clock = clock
        self._recent: deque[float] = deque()

    def take(self) -> float:
        """0 when a creation may go now (and counts it), else the seconds until a slot frees."""
        now = self._clock.now().timestamp()
        while self._recent and self._recent[0] <= now - WINDOW:
            self._recent.popleft()
        if len(self._recent) >= self._per_minute:
            return float(max(1, math.ceil(self._recent[0] + WINDOW - now)))
        self._recent.append(now)
        return 0.0
