"""Each incident's timestamp fold in the store reads exactly what its whole timeline says,
on every backend: kept up to date by reading only new entries, and rebuilt on demand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from samples import db_alert

from orchestrator.clock import ManualClock
from orchestrator.incident.events import Correction, NoteAdded, StatusChange
from orchestrator.incident.model import Actor, ActorKind, Status
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.loader import load_playbooks
from orchestrator.report.timestamps import CanonicalTimestamps, canonical_timestamps
from orchestrator.store.sql import SqlStore
from orchestrator.timeline import Kind

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
T0 = dt.datetime(2026, 5, 4, 3, 0, tzinfo=dt.UTC)
ALICE = Actor(ActorKind.SLACK, "U1", "alice")


async def whole_timelines(store: SqlStore) -> dict[int, CanonicalTimestamps]:
    return {
        incident.number: canonical_timestamps(await store.timeline(incident.number))
        for incident in await store.list_incidents()
    }


async def folded(
    store: SqlStore, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> dict[int, CanonicalTimestamps]:
    return {stamps.number: stamps for stamps, _, _ in await store.folded_timestamps(start, end)}


async def test_folds_follow_the_timeline(store: SqlStore) -> None:
    clock = ManualClock(T0)
    pipeline = Pipeline(store, load_playbooks(PLAYBOOKS), clock)
    for day, service in enumerate(["orders-db", "billing-db", "users-db"]):
        clock.set(T0 + dt.timedelta(days=day))
        await pipeline.ingest_bytes(db_alert(service, starts_at=clock.now()), "test")
    assert await store.refresh_folds() == [1, 2, 3]
    assert await folded(store) == await whole_timelines(store)
    assert await store.refresh_folds() == []  # nothing new: nothing read again

    # Incident 2 moves on: acknowledged, noted, resolved, and its ack time corrected.
    clock.advance(dt.timedelta(minutes=4))
    await pipeline.apply(2, StatusChange(Status.ACKNOWLEDGED, ALICE))
    await pipeline.apply(2, NoteAdded("failing over", ALICE))
    clock.advance(dt.timedelta(minutes=30))
    await pipeline.apply(2, StatusChange(Status.RESOLVED, ALICE))
    ack = next(e for e in await store.timeline(2) if e.kind is Kind.INCIDENT_ACKNOWLEDGED)
    acked_at = (ack.occurred_at - dt.timedelta(minutes=2)).isoformat()
    await pipeline.apply(2, Correction(ack.seq, "acked by phone", {"occurred_at": acked_at}, ALICE))

    progress: list[tuple[int, int]] = []
    assert await store.refresh_folds(
        progress=lambda done, total: progress.append((done, total))
    ) == [2]
    assert progress == [(1, 1)]
    expected = await whole_timelines(store)
    assert await folded(store) == expected
    second = (await folded(store))[2]
    assert second.first_ack_at == ack.occurred_at - dt.timedelta(minutes=2)
    assert second.status is Status.RESOLVED

    # By declared_at, for a period.
    day_two = T0 + dt.timedelta(days=1)
    assert set(await folded(store, day_two, day_two + dt.timedelta(days=1))) == {2}

    # Rebuilt from the first entry: every incident, the same figures.
    assert await store.refresh_folds(rebuild=True) == [1, 2, 3]
    assert await folded(store) == expected
