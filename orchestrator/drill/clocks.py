"""The clock a live drill runs on: the wall clock, sped up by the scenario's speed."""

from __future__ import annotations

import datetime as dt

from orchestrator.clock import Clock


class ScaledClock:
    """Scenario time from a wall clock: `speed` scenario seconds per wall second, from the
    moment it was made. At speed 1 it is the wall clock itself, so what players do through
    Slack (stamped by the service's clock) lines up with what the drill does."""

    def __init__(self, wall: Clock, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.wall = wall
        self.speed = speed
        self.anchor = wall.now()

    def now(self) -> dt.datetime:
        if self.speed == 1:
            return self.wall.now()
        return self.anchor + (self.wall.now() - self.anchor) * self.speed

    async def sleep(self, seconds: float) -> None:
        """`seconds` of scenario time."""
        await self.wall.sleep(seconds / self.speed)
