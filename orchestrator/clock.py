"""The only place that reads the wall clock; everything else is handed a Clock."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """Timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """Moves only when told, so tests and drills run hours of policy in milliseconds."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        start = start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(dt.UTC)

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, delta: dt.timedelta | float) -> dt.datetime:
        seconds = delta.total_seconds() if isinstance(delta, dt.timedelta) else delta
        if seconds < 0:
            raise ValueError("time never runs backwards")
        self._now += dt.timedelta(seconds=seconds)
        return self._now

    def set(self, when: dt.datetime) -> None:
        if when < self._now:
            raise ValueError("time never runs backwards")
        self._now = when.astimezone(dt.UTC)

    async def sleep(self, seconds: float) -> None:
        # Sleeping on a manual clock moves it; yield once so other tasks get to run.
        self.advance(max(seconds, 0.0))
        await asyncio.sleep(0)
