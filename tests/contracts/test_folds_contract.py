"""Each incident's timestamp fold in the store reads exactly what its whole timeline says,
on every backend: kept up to date by reading only new entries, and rebuilt on demand."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from alembic import command
from samples import db_alert

from orchestrator.clock import ManualClock
from orchestrator.incident.events import Correction, NoteAdded, StatusChange
from orchestrator.incident.model import Actor, ActorKind, Status
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.loader import load_playbooks
from orchestrator.report.metrics import Metric, metrics_from_figures
from orchestrator.report.timestamps import CanonicalTimestamps, canonical_timestamps
from orchestrator.store.engine import alembic_config
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


async def test_each_incident_over_is_claimed_once_whichever_replica_asks(
    store: SqlStore, store_url: str
) -> None:
    """The service's histograms take an incident when it is over; replicas claiming at the
    same time share the incidents out, none twice, and open ones wait."""
    # Another replica on the same database (an in-memory database has only the one).
    other = store if ":memory:" in store_url else SqlStore(store_url)
    if other is not store:
        await other.open()
    try:
        clock = ManualClock(T0)
        pipeline = Pipeline(store, load_playbooks(PLAYBOOKS), clock)
        for service in ["orders-db", "billing-db", "users-db"]:
            await pipeline.ingest_bytes(db_alert(service, starts_at=clock.now()), "test")
        clock.advance(dt.timedelta(minutes=3))
        for number in (1, 2, 3):
            await pipeline.apply(number, StatusChange(Status.ACKNOWLEDGED, ALICE))
        clock.advance(dt.timedelta(minutes=20))
        for number in (1, 3):
            await pipeline.apply(number, StatusChange(Status.RESOLVED, ALICE))
        await asyncio.gather(store.refresh_folds(), other.refresh_folds())

        first, second = await asyncio.gather(store.claim_over(), other.claim_over())
        claimed = [figures[0] for figures, _, _ in first + second]
        assert sorted(claimed) == [1, 3]  # each once; #2 is still open
        assert await store.claim_over() == []
        assert await other.claim_over() == []

        await pipeline.apply(2, StatusChange(Status.RESOLVED, ALICE))
        await other.refresh_folds()
        ((figures, team, is_drill),) = await store.claim_over()
        measured = metrics_from_figures(figures, team=team, is_drill=is_drill)
        assert (measured.number, measured.counted) == (2, True)
        assert measured.durations[Metric.TTA] == 180.0
    finally:
        if other is not store:
            await other.close()


async def test_the_upgrade_leaves_incidents_already_over_out_of_the_histograms(
    store: SqlStore,
) -> None:
    """Migration 0009 marks what ended before it as observed (its history is not poured into
    the histograms at once); incidents still open are recorded when they end."""
    clock = ManualClock(T0)
    pipeline = Pipeline(store, load_playbooks(PLAYBOOKS), clock)
    for service in ["orders-db", "billing-db"]:
        await pipeline.ingest_bytes(db_alert(service, starts_at=clock.now()), "test")
    clock.advance(dt.timedelta(minutes=10))
    await pipeline.apply(1, StatusChange(Status.RESOLVED, ALICE))
    await store.refresh_folds()
    with store.engine.begin() as conn:
        config = alembic_config(conn)
        command.downgrade(config, "0008")
        command.upgrade(config, "head")

    assert await store.claim_over() == []
    await pipeline.apply(2, StatusChange(Status.RESOLVED, ALICE))
    await store.refresh_folds()
    assert [figures[0] for figures, _, _ in await store.claim_over()] == [2]
