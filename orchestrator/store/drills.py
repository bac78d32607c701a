"""The store's drill queries: runs of scenarios, their control state (pause, resume, ENDEX) and
their incidents, actions and timers, kept apart from real work by the drill id."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from orchestrator.drill.record import DrillRun, DrillStateError, Mode, RunState
from orchestrator.incident.model import Incident
from orchestrator.report.action_items import ActionItem
from orchestrator.store import rows
from orchestrator.store.postmortems import item_from_row
from orchestrator.store.schema import action_items, drill_runs, incidents, timers
from orchestrator.timers import TimerStatus

T = TypeVar("T")

__all__ = ["DrillQueries", "DrillStateError"]


class DrillQueries:
    """Mixed into SqlStore; `_run` and `_read` are its one-hop helpers."""

    async def _run(self, work: Callable[[Connection], T], *, write: bool) -> T:
        raise NotImplementedError

    async def _read(self, query: sa.Select[Any]) -> Sequence[RowMapping]:
        raise NotImplementedError

    async def start_drill_run(self, run: DrillRun) -> DrillRun:
        """Stores a new run; its id becomes `<scenario id>-<n>`, the scenario's n-th run here."""

        def insert(conn: Connection) -> DrillRun:
            taken = conn.scalar(
                sa.select(sa.func.count()).where(drill_runs.c.scenario_id == run.scenario_id)
            )
            number = int(taken or 0) + 1
            while conn.scalar(
                sa.select(drill_runs.c.id).where(drill_runs.c.id == f"{run.scenario_id}-{number}")
            ):
                number += 1
            stored = dataclasses.replace(run, id=f"{run.scenario_id}-{number}")
            conn.execute(sa.insert(drill_runs).values(_values(stored)))
            return stored

        return await self._run(insert, write=True)

    async def save_drill_result(
        self, run_id: str, result: dict[str, Any], *, ended_at: dt.datetime | None = None
    ) -> None:
        values: dict[str, Any] = {"result": result}
        if ended_at is not None:
            values |= {"ended_at": ended_at, "state": RunState.ENDED.value}
        statement = sa.update(drill_runs).where(drill_runs.c.id == run_id).values(values)
        await self._run(lambda conn: conn.execute(statement), write=True)

    async def set_drill_state(self, run_id: str, state: RunState) -> DrillRun:
        """Pause, resume or end a running drill; its runner picks the change up."""

        def change(conn: Connection) -> DrillRun:
            found = (
                conn.execute(sa.select(drill_runs).where(drill_runs.c.id == run_id))
                .mappings()
                .first()
            )
            if found is None:
                raise DrillStateError(f"no drill run {run_id!r}")
            current = _run_from_row(found)
            if current.state is RunState.ENDED:
                raise DrillStateError(f"drill {run_id} has already ended")
            conn.execute(
                sa.update(drill_runs).where(drill_runs.c.id == run_id).values(state=state.value)
            )
            return dataclasses.replace(current, state=state)

        return await self._run(change, write=True)

    async def get_drill_run(self, run_id: str) -> DrillRun | None:
        found = await self._read(sa.select(drill_runs).where(drill_runs.c.id == run_id))
        return _run_from_row(found[0]) if found else None

    async def list_drill_runs(
        self, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> list[DrillRun]:
        """Runs started in [since, until), oldest first."""
        query = sa.select(drill_runs).order_by(drill_runs.c.started_at, drill_runs.c.id)
        if since is not None:
            query = query.where(drill_runs.c.started_at >= since)
        if until is not None:
            query = query.where(drill_runs.c.started_at < until)
        return [_run_from_row(row) for row in await self._read(query)]

    async def drill_incidents(self, run_id: str) -> list[Incident]:
        query = (
            sa.select(incidents).where(incidents.c.drill_id == run_id).order_by(incidents.c.number)
        )
        return [rows.incident_from_row(row) for row in await self._read(query)]

    async def drill_corrective_actions(self, run: DrillRun) -> list[ActionItem]:
        """The action items the run lists as its corrective actions, in that order."""
        wanted = [i for i in run.result.get("corrective_actions") or [] if isinstance(i, int)]
        if not wanted:
            return []
        query = (
            sa.select(action_items)
            .join(incidents, incidents.c.number == action_items.c.incident_number)
            .where(incidents.c.drill_id == run.id, action_items.c.id.in_(wanted))
        )
        items = {row["id"]: item_from_row(row) for row in await self._read(query)}
        return [items[i] for i in dict.fromkeys(wanted) if i in items]

    async def cancel_drill_timers(self, run_id: str, now: dt.datetime) -> int:
        """At ENDEX: nothing of the drill may fire after it."""
        statement = (
            sa.update(timers)
            .where(timers.c.drill_id == run_id, timers.c.status == TimerStatus.PENDING.value)
            .values(status=TimerStatus.CANCELLED.value, cancelled_at=now, claimed_until=None)
        )
        result = await self._run(lambda conn: conn.execute(statement), write=True)
        return int(result.rowcount or 0)


def _values(run: DrillRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "scenario_id": run.scenario_id,
        "title": run.title,
        "scenario_sha256": run.scenario_sha256,
        "scenario": run.scenario,
        "mode": run.mode.value,
        "state": run.state.value,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "clock_start": run.clock_start,
        "result": run.result,
    }


def _run_from_row(row: RowMapping) -> DrillRun:
    return DrillRun(
        id=row["id"],
        scenario_id=row["scenario_id"],
        title=row["title"],
        scenario_sha256=row["scenario_sha256"],
        scenario=row["scenario"],
        mode=Mode(row["mode"]),
        state=RunState(row["state"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        clock_start=row["clock_start"],
        result=dict(row["result"]),
    )
