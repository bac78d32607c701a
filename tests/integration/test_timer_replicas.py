"""Timer replicas as separate processes on one store: a replica killed while it holds leases
loses nothing and doubles nothing, and a worker started after downtime catches up on the
overdue backlog once per timer, in due order.

The timers are the shipped database playbook's: incidents are opened by ingesting alerts
through the real pipeline on a clock set hours back, then the rest of each incident's
escalation ladder (with the engine's own keys, so firing a level finds its successor already
stored) and a stale ack timeout are written next to them. Everything is overdue when the
workers start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import signal
import sys
from collections.abc import Awaitable, Callable
from itertools import pairwise
from pathlib import Path
from typing import IO

import pytest
import sqlalchemy as sa
from samples import db_alert

from orchestrator.clock import ManualClock, SystemClock
from orchestrator.incident.model import Incident
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.loader import load_playbooks
from orchestrator.playbook.model import Playbook
from orchestrator.store.protocols import Timer, TimerStatus
from orchestrator.store.schema import timers as timers_table
from orchestrator.store.sql import SqlStore
from orchestrator.timeline import Kind, TimelineEntry
from orchestrator.timers import TimerKind

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests/integration/timer_worker.py"
PLAYBOOK = "database-unavailable"
LEASE = 2.0  # seconds: short, so a dead replica's timers come back within the test
WAIT = 45.0
FIRE_KINDS = {Kind.TIMER_FIRED, Kind.TIMER_SKIPPED}


def ladder(incident: Incident, playbook: Playbook) -> list[Timer]:
    """The incident's whole escalation ladder as the engine schedules it level by level, with
    the engine's key scheme, so that firing a level finds its successor already stored."""
    policy = playbook.escalation
    assert policy is not None
    timers = []
    round_start = incident.declared_at
    for round_ in range(policy.repeat + 1):
        stamp = round_start.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")
        for level, step in enumerate(policy.levels):
            timers.append(
                Timer(
                    key=f"{incident.number}:{incident.cycle}:esc:{stamp}.{round_}.{level}",
                    incident_number=incident.number,
                    kind=TimerKind.ESCALATION.value,
                    due_at=round_start + step.after,
                    payload={
                        "cycle": incident.cycle,
                        "round": round_,
                        "level": level,
                        "round_start": round_start.isoformat(),
                    },
                )
            )
        # The next round starts when this one's last level was due, as in the engine.
        round_start += policy.levels[-1].after
    return timers


def stale_ack_timeout(incident: Incident, playbook: Playbook) -> Timer:
    """An ack timeout from an acknowledgement the incident no longer reflects: it is still
    triggered, so the timer must fire as skipped."""
    assert playbook.ack_timeout is not None
    acked_at = incident.declared_at + dt.timedelta(minutes=2)
    return Timer(
        key=f"{incident.number}:{incident.cycle}:ack_timeout:{acked_at:%Y%m%dT%H%M%S}",
        incident_number=incident.number,
        kind=TimerKind.ACK_TIMEOUT.value,
        due_at=acked_at + playbook.ack_timeout,
        payload={"cycle": incident.cycle},
    )


async def seed(store: SqlStore, incidents: int) -> dict[str, Timer]:
    """Opens `incidents` database incidents one second apart, three hours ago, and stores each
    one's whole escalation ladder plus a stale ack timeout: seven overdue timers an incident,
    with distinct due times (within an incident they are minutes apart)."""
    start = SystemClock().now().replace(microsecond=0) - dt.timedelta(hours=3)
    clock = ManualClock(start)
    playbooks = load_playbooks(REPO / "playbooks")
    pipeline = Pipeline(store, playbooks, clock)
    for index in range(incidents):
        clock.set(start + dt.timedelta(seconds=index))
        raw = db_alert(f"db-{index:03d}", starts_at=clock.now())
        await pipeline.ingest_bytes(raw, f"seed:{index}")

    playbook = playbooks.get(PLAYBOOK)
    assert playbook is not None
    opened = await store.list_incidents(limit=incidents + 1)
    assert len(opened) == incidents
    timers = [
        timer
        for incident in opened
        for timer in [*ladder(incident, playbook), stale_ack_timeout(incident, playbook)]
    ]
    async with store.transaction() as tx:
        # The ingest already scheduled each ladder's first level: that key is skipped here.
        await tx.schedule_timers(timers)

    stored = {timer.key: timer for timer in await store.list_timers()}
    assert set(stored) >= {timer.key for timer in timers}
    now = SystemClock().now()
    assert all(t.status is TimerStatus.PENDING and t.due_at < now for t in stored.values())
    assert len({t.due_at for t in stored.values()}) == len(stored)
    return stored


async def start_worker(
    url: str, log: IO[bytes], *, crash: bool = False, start_at: float = 0.0
) -> asyncio.subprocess.Process:
    env = dict(os.environ)
    env.pop("ORCH_TEST_CRASH_AFTER_CLAIM", None)
    env["ORCH_TEST_START_AT"] = str(start_at)
    if crash:
        env["ORCH_TEST_CRASH_AFTER_CLAIM"] = "1"
    # stderr goes to a file: a pipe nobody reads could fill up and stall a long-running worker.
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        url,
        str(LEASE),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )


def tail(log: Path) -> str:
    """The end of a worker's stderr, for an assertion message."""
    return log.read_text()[-2000:]


async def wait_ready(process: asyncio.subprocess.Process, log: Path) -> None:
    assert process.stdout is not None
    async with asyncio.timeout(WAIT):
        line = await process.stdout.readline()
    assert line == b"ready\n", tail(log)


async def stop_worker(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(WAIT):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not await check():  # noqa: ASYNC110 - the store has no change feed
            await asyncio.sleep(0.2)
    assert await check(), what


async def none_pending(store: SqlStore) -> bool:
    return all(t.status is not TimerStatus.PENDING for t in await store.list_timers())


async def fire_entries(store: SqlStore) -> dict[str, list[TimelineEntry]]:
    """Every timer.fired and timer.skipped entry, by timer key."""
    by_key: dict[str, list[TimelineEntry]] = {}
    for incident in await store.list_incidents(limit=1000):
        for entry in await store.timeline(incident.number):
            if entry.kind in FIRE_KINDS:
                by_key.setdefault(entry.data["key"], []).append(entry)
    return by_key


async def assert_fired_once(store: SqlStore, seeded: dict[str, Timer]) -> dict[str, TimelineEntry]:
    """Every timer in the store, the seeded ones and any the engine added while firing them,
    fired exactly once: one timer.fired or timer.skipped entry each, none pending."""
    timers = await store.list_timers()
    assert {t.key for t in timers} >= set(seeded)
    assert all(t.status is TimerStatus.FIRED for t in timers)
    by_key = await fire_entries(store)
    assert set(by_key) == {t.key for t in timers}
    doubled = {key: len(entries) for key, entries in by_key.items() if len(entries) != 1}
    assert doubled == {}
    return {key: entries[0] for key, entries in by_key.items()}


@pytest.mark.postgres
@pytest.mark.backends("postgres")  # SKIP LOCKED replicas; store_url gives a fresh schema
async def test_a_replica_killed_holding_claims_loses_and_doubles_nothing(
    store_url: str, tmp_path: Path
) -> None:
    store = SqlStore(store_url)
    await store.open()
    crash_log, survivor_log = tmp_path / "crashing.log", tmp_path / "survivor.log"
    with crash_log.open("wb") as crash_err, survivor_log.open("wb") as survivor_err:
        try:
            seeded = await seed(store, 50)
            assert len(seeded) >= 200

            # The crashing replica gets a head start so that it, not the survivor, is
            # first to claim; the survivor then works alongside it until it dies.
            crashing = await start_worker(store_url, crash_err, crash=True)
            survivor = await start_worker(store_url, survivor_err)
            try:
                async with asyncio.timeout(WAIT):
                    out, _ = await crashing.communicate()
                assert crashing.returncode == -signal.SIGKILL, tail(crash_log)
                lines = out.decode().splitlines()
                assert len(lines) == 3, out.decode()
                assert lines[0] == "ready"
                assert lines[1].startswith("claimed ")
                held = json.loads(lines[2])
                claimed = set(held["keys"])
                assert len(claimed) == int(lines[1].split()[1]) > 0
                assert claimed <= set(seeded)
                lease_ends = dt.datetime.fromisoformat(held["now"]) + dt.timedelta(
                    seconds=held["lease"]
                )

                await wait_ready(survivor, survivor_log)
                await eventually(lambda: none_pending(store), "every timer fired")
            finally:
                if crashing.returncode is None:  # it never claimed: do not leave it running
                    crashing.kill()
                    await crashing.wait()
                returncode = await stop_worker(survivor)
            assert returncode == 0, tail(survivor_log)

            fired = await assert_fired_once(store, seeded)
            kinds = {entry.kind for entry in fired.values()}
            assert kinds == FIRE_KINDS  # the ladders fired, the stale ack timeouts were skipped
            early = {key for key in claimed if fired[key].recorded_at < lease_ends}
            assert early == set(), f"fired before the dead replica's lease ran out at {lease_ends}"
        finally:
            await store.close()


@pytest.mark.backends("sqlite-file", "postgres")
async def test_a_worker_started_after_downtime_fires_the_backlog_once_in_due_order(
    store_url: str, tmp_path: Path
) -> None:
    store = SqlStore(store_url)
    await store.open()
    log = tmp_path / "worker.log"
    with log.open("wb") as err:
        try:
            # No worker ran while these came due: the downtime.
            seeded = await seed(store, 20)
            worker = await start_worker(store_url, err)
            try:
                await wait_ready(worker, log)
                await eventually(lambda: none_pending(store), "every timer fired")
            finally:
                returncode = await stop_worker(worker)
            assert returncode == 0, tail(log)

            fired = await assert_fired_once(store, seeded)
            in_due_order = sorted(seeded.values(), key=lambda t: t.due_at)
            recorded = [fired[t.key].recorded_at for t in in_due_order]
            late = [(a, b) for a, b in pairwise(recorded) if a > b]
            assert late == []
            # Timers fired in one transaction share a time, so also check the order within
            # each incident's timeline, where every entry has its own position.
            for number in {t.incident_number for t in seeded.values()}:
                entries = sorted(
                    (e for e in fired.values() if e.incident_number == number),
                    key=lambda e: e.seq,
                )
                due = [seeded[e.data["key"]].due_at for e in entries]
                assert due == sorted(due), f"incident #{number} fired out of due order"
        finally:
            await store.close()


@pytest.mark.postgres
@pytest.mark.backends("postgres")
async def test_three_replicas_at_once_neither_deadlock_nor_double(
    store_url: str, tmp_path: Path
) -> None:
    """Replicas claim interleaved batches that touch the same incidents; each locks incidents
    in number order, so they queue behind each other instead of deadlocking."""
    store = SqlStore(store_url)
    await store.open()
    logs = [tmp_path / f"replica-{n}.log" for n in range(3)]
    files = [log.open("wb") for log in logs]
    try:
        seeded = await seed(store, 60)
        # Due times shuffled across incidents, so one replica's batch meets incidents in an
        # order another replica's batch meets them the other way round.
        await asyncio.to_thread(_shuffle_due_times, store, random.Random(7))
        # All three make their first claim at the same moment, then keep claiming side by
        # side: their batches interleave over the same incidents.
        start_at = SystemClock().now().timestamp() + 4
        workers = [await start_worker(store_url, err, start_at=start_at) for err in files]
        try:
            for worker, log in zip(workers, logs, strict=True):
                await wait_ready(worker, log)
            await eventually(lambda: none_pending(store), "every timer fired")
        finally:
            codes = [await stop_worker(worker) for worker in workers]
        assert codes == [0, 0, 0], [tail(log) for log in logs]
        await assert_fired_once(store, seeded)
        for log in logs:
            assert "Deadlock" not in log.read_text(errors="replace")
    finally:
        for err in files:
            err.close()
        await store.close()


def _shuffle_due_times(store: SqlStore, rng: random.Random) -> None:
    with store.engine.begin() as conn:
        keys = [row.key for row in conn.execute(sa.select(timers_table.c.key))]
        due = [row.due_at for row in conn.execute(sa.select(timers_table.c.due_at))]
        rng.shuffle(due)
        for key, when in zip(keys, due, strict=True):
            conn.execute(
                sa.update(timers_table).where(timers_table.c.key == key).values(due_at=when)
            )
