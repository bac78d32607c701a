"""A drill's work is its own, on every store: the service never delivers a drill's actions or
fires its timers, a drill runner touches nothing else, and drill alerts never join a real
incident (nor real alerts a drill's)."""

from __future__ import annotations

import datetime as dt

from playing import PLAYBOOKS
from samples import db_alert

from orchestrator.clock import ManualClock
from orchestrator.ingest.alert import SourceFormat
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.store.protocols import Disposition
from orchestrator.store.sql import SqlStore

T0 = dt.datetime(2026, 3, 2, 18, 30, tzinfo=dt.UTC)
LEASE = dt.timedelta(seconds=30)


async def test_drill_work_is_claimed_only_by_its_own_runner(store: SqlStore) -> None:
    playbooks = load_playbooks(PLAYBOOKS, known_actions=ACTION_NAMES)
    clock = ManualClock(T0)
    real = Pipeline(store, playbooks, clock)
    drill = Pipeline(store, playbooks, clock, drill_id="db-failover-peak-1")
    other = Pipeline(store, playbooks, clock, drill_id="db-failover-peak-2")

    raw = db_alert(starts_at=T0)
    drilled = await drill.ingest_bytes(raw, "drill", format=SourceFormat.NATIVE)
    # The same alert, for real and in another drill: a new incident each, not a duplicate
    # of the drill's alert, not grouped into the drill's incident.
    served = await real.ingest_bytes(raw, "real", format=SourceFormat.NATIVE)
    elsewhere = await other.ingest_bytes(raw, "other", format=SourceFormat.NATIVE)
    numbers = [r.outcomes[0].incident_number for r in (drilled, served, elsewhere)]
    assert [r.outcomes[0].disposition for r in (drilled, served, elsewhere)] == [
        Disposition.OPENED
    ] * 3
    assert len(set(numbers)) == 3
    drill_number, real_number, other_number = numbers
    incident = await store.get_incident(drill_number)
    assert incident is not None
    assert incident.is_drill
    assert incident.drill_id == "db-failover-peak-1"
    assert (await store.get_incident(real_number)).is_drill is False  # type: ignore[union-attr]

    now = T0 + dt.timedelta(hours=1)
    service_actions = await store.claim_due_actions(now, 100, LEASE)
    assert {item.action.incident_number for item in service_actions} == {real_number}
    runner_actions = await store.claim_due_actions(now, 100, LEASE, "db-failover-peak-1")
    assert {item.action.incident_number for item in runner_actions} == {drill_number}
    assert all(item.action.drill_id == "db-failover-peak-1" for item in runner_actions)

    assert await store.next_timer_due() == await store.next_timer_due("db-failover-peak-1")
    service_timers = await store.claim_due_timers(now, 100, LEASE)
    assert {timer.incident_number for timer in service_timers} == {real_number}
    runner_timers = await store.claim_due_timers(now, 100, LEASE, "db-failover-peak-2")
    assert {timer.incident_number for timer in runner_timers} == {other_number}

    # The escalation auditor watches real timers only: a drill's overdue timers are the drill's.
    count, _ = await store.overdue_timers(now + dt.timedelta(hours=1))
    assert count == len(await store.list_timers(real_number))

    # ENDEX cancels the drill's timers, and only its.
    cancelled = await store.cancel_drill_timers("db-failover-peak-1", now)
    assert cancelled == len(await store.list_timers(drill_number))
    assert await store.next_timer_due("db-failover-peak-1") is None
    assert await store.next_timer_due() is not None
