"""Reloading the playbooks of a running service: a good edit is swapped in, a bad one refused
with the old set still running, and SIGHUP does it."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from samples import CLEAN_ENV, db_alert

from orchestrator.app import App, build_app
from orchestrator.clock import ManualClock
from orchestrator.ingest.alert import SourceFormat
from orchestrator.reload import Reloader, reload_playbooks
from orchestrator.service import install_signal_handlers, run_every
from orchestrator.settings import Settings

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 3, 2, 18, 30, tzinfo=dt.UTC)
DB_PLAYBOOK = "20-database-unavailable.yaml"


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[App]:
    for name, value in CLEAN_ENV.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "playbooks"
    shutil.copytree(REPO / "playbooks", folder)
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'reload.db'}",
        playbooks_dir=folder,
        dry_run=True,
    )
    built = await build_app(settings, clock=ManualClock(T0))
    try:
        yield built
    finally:
        await built.close()


def edit(app: App, old: str, new: str) -> None:
    path = app.settings.playbooks_dir / DB_PLAYBOOK
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


async def opened_title(app: App, service: str) -> str:
    report = await app.pipeline.ingest_bytes(
        db_alert(service, starts_at=T0), "test", format=SourceFormat.NATIVE
    )
    number = report.outcomes[0].incident_number
    assert number is not None
    incident = await app.store.get_incident(number)
    assert incident is not None
    return incident.title


async def test_a_good_edit_is_swapped_in(app: App) -> None:
    before = app.playbooks.get("database-unavailable")
    assert before is not None
    edit(
        app,
        'title: "{{ labels.service }}: database unavailable"',
        'title: "DB down: {{ labels.service }}"',
    )
    result = await reload_playbooks(app)
    assert result.loaded
    after = app.playbooks.get("database-unavailable")
    assert after is not None
    assert after.version != before.version
    assert f"database-unavailable@{after.version}" in result.playbooks
    assert app.pipeline.playbooks is app.playbooks
    assert await opened_title(app, "orders-db") == "DB down: orders-db"


async def test_a_bad_edit_is_refused_and_the_running_set_stays(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    running = app.playbooks
    edit(
        app,
        "match: ['alertname=~\"Postgres(Down|Unreachable)\"', 'env=\"prod\"']",
        "match: ['alertname=~\"Postgres(Down|Unreachable\"', 'env=\"prod\"']",
    )
    result = await reload_playbooks(app)
    assert not result.loaded
    (problem,) = result.problems
    assert problem.file.endswith(DB_PLAYBOOK)
    assert problem.line == 4
    assert "match" in problem.message
    assert app.playbooks is running
    assert app.pipeline.playbooks is running
    assert "playbook reload refused: 1 problem(s)" in caplog.text
    assert await opened_title(app, "orders-db") == "orders-db: database unavailable"


async def test_sighup_reloads(app: App) -> None:
    running = app.playbooks
    stop = asyncio.Event()
    install_signal_handlers(stop, Reloader(app).in_background)
    loop = asyncio.get_running_loop()
    try:
        edit(app, "reopen_window: 4h", "reopen_window: 2h")
        os.kill(os.getpid(), signal.SIGHUP)
        async with asyncio.timeout(10):
            while app.playbooks is running:  # noqa: ASYNC110 - the signal's task sets nothing to wait on
                await asyncio.sleep(0.02)
        playbook = app.playbooks.get("database-unavailable")
        assert playbook is not None
        assert playbook.reopen_window == dt.timedelta(hours=2)
        assert not stop.is_set()
    finally:
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def test_a_watched_folder_reloads_when_a_file_changes(app: App) -> None:
    running = app.playbooks
    stop = asyncio.Event()
    reloader = Reloader(app)
    watching = asyncio.create_task(
        run_every(stop, 0.05, reloader.reload_if_changed, "watching the playbook folder")
    )
    try:
        await asyncio.sleep(0.1)
        assert app.playbooks is running  # nothing changed: nothing reloaded
        edit(app, "reopen_window: 4h", "reopen_window: 3h")
        async with asyncio.timeout(10):
            while app.playbooks is running:  # noqa: ASYNC110 - the watcher polls the folder
                await asyncio.sleep(0.02)
        playbook = app.playbooks.get("database-unavailable")
        assert playbook is not None
        assert playbook.reopen_window == dt.timedelta(hours=3)
    finally:
        stop.set()
        await asyncio.wait_for(watching, 5)
