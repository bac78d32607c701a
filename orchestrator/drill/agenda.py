"""A run's agenda: what is due when on the scenario clock (injects, recorded messages,
scripted responses, deadlines), earliest first, in the order scheduled when times tie."""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
from dataclasses import dataclass, field

from orchestrator.drill.scenario import ExpectedAction, Inject, ScriptedResponse
from orchestrator.ingest.alert import SourceFormat


@dataclass(frozen=True)
class Message:
    """One recorded alert message, re-timed, due on its own."""

    raw: bytes
    label: str
    format: SourceFormat | None


Item = Inject | Message | ScriptedResponse | ExpectedAction


@dataclass(order=True)
class Due:
    at: dt.datetime
    order: int
    what: Item = field(compare=False)
    label: str = field(default="", compare=False)
    kind: str = field(default="inject", compare=False)  # inject | contingency | response | deadline


class Agenda:
    def __init__(self) -> None:
        self._due: list[Due] = []
        self._order = itertools.count()

    def __bool__(self) -> bool:
        return bool(self._due)

    def push(self, at: dt.datetime, what: Item, label: str, kind: str) -> None:
        heapq.heappush(self._due, Due(at, next(self._order), what, label, kind))

    def next_at(self) -> dt.datetime | None:
        return self._due[0].at if self._due else None

    def pop_due(self, now: dt.datetime) -> Due | None:
        if self._due and self._due[0].at <= now:
            return heapq.heappop(self._due)
        return None

    def delay(self, pause: dt.timedelta) -> None:
        """After a pause what was still to come comes that much later, deadlines included."""
        for due in self._due:
            due.at += pause
