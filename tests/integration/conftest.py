"""Fixtures the integration tests share: a store on a fresh SQLite file, a manual clock, and the
real pipeline with the shipped playbooks."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.clock import ManualClock
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'integration.db'}")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def pipeline(store: SqlStore, clock: ManualClock) -> Pipeline:
    return Pipeline(store, load_playbooks(REPO / "playbooks", known_actions=ACTION_NAMES), clock)
