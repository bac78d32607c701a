"""Benchmark: metrics, evidence verification and export on a year of incidents.

Fills a store through the real pipeline with --incidents incidents declared over 2026 (database
alerts for 40 services, a tenth of them SEV1), each acknowledged, mitigated and resolved on its
own schedule by apply_many, with notes until its timeline holds about --entries entries. Then it
times, as a user runs them (a fresh `orchestrator` process each, its peak RSS read with wait4):

- `orchestrator metrics --from 2026-01-01 --to 2026-12-31 --by service`: first with no
  timestamp folds stored (every timeline folded once), then as the service keeps them (the
  target's case), then after a thousand incidents gained a note each;
- `orchestrator evidence verify` over the whole store (entries per second);
- `orchestrator evidence export` for the second quarter and for the whole year: if the export
  streams, its peak memory is about the same for four times the incidents.

    .venv/bin/python bench/evidence_scale.py --incidents 100000 --entries 50
    .venv/bin/python bench/evidence_scale.py --database-url \\
        postgresql+asyncpg://postgres@127.0.0.1:5432/evidence_bench_test --reset

A filled SQLite file can be kept and measured again: --database-url sqlite:///path --keep,
then --skip-fill.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from databases import reset_postgres
from machine import cpu_line

from orchestrator.clock import ManualClock
from orchestrator.incident.events import (
    CommanderAssigned,
    Event,
    NoteAdded,
    StatusChange,
)
from orchestrator.incident.model import Actor, ActorKind, Status
from orchestrator.pipeline import Payload, Pipeline
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[1]
YEAR = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SERVICES = [f"db-{name}" for name in range(40)]
DAYS = 364  # one batch of incidents is declared each day, responded to by the next
RESPONSE_WITHIN = dt.timedelta(hours=11)  # every response is over before the next day's batch
TARGET_METRICS = {"postgresql": 2.0, "sqlite": 5.0}
TARGET_VERIFY = 200_000  # entries per second
RESPONDERS = [Actor(ActorKind.SLACK, f"U{n:03}", f"responder-{n}") for n in range(30)]


def alert(number: int, declared: dt.datetime, rng: random.Random) -> bytes:
    """A database alert of its own cluster, so each opens an incident of its own."""
    detected_after = dt.timedelta(seconds=rng.randint(20, 600))
    return json.dumps(
        {
            "labels": {
                "alertname": "PostgresDown",
                "env": "prod",
                "service": SERVICES[number % len(SERVICES)],
                "cluster": f"node-{number}",
                "severity": "critical" if number % 10 == 0 else "warning",
            },
            "annotations": {"summary": f"node-{number} is down"},
            "starts_at": (declared - detected_after).isoformat(),
        }
    ).encode()


def response(
    number: int, declared: dt.datetime, notes: int, rng: random.Random
) -> Iterator[tuple[int, Event]]:
    """One incident's response: ack, commander, notes, mitigation, resolution, each with the
    time it happened by the responder's clock."""
    who = rng.choice(RESPONDERS)
    at = declared + dt.timedelta(seconds=rng.lognormvariate(5.5, 0.8))
    yield number, StatusChange(Status.ACKNOWLEDGED, who, "on it", occurred_at=at)
    yield number, CommanderAssigned(who.name, who, occurred_at=at)
    for note in range(notes):
        at += dt.timedelta(seconds=rng.randint(30, 300))
        yield number, NoteAdded(f"step {note}: checked replica lag", who, occurred_at=at)
    at += dt.timedelta(seconds=rng.lognormvariate(7.0, 0.7))
    yield number, StatusChange(Status.MITIGATED, who, "failed over", occurred_at=at)
    at += dt.timedelta(seconds=rng.lognormvariate(7.5, 0.6))
    at = min(at, declared + RESPONSE_WITHIN - dt.timedelta(minutes=1))
    yield number, StatusChange(Status.RESOLVED, who, "primary back", occurred_at=at)


async def fill(url: str, incidents: int, entries: int) -> tuple[float, int]:
    """Returns (seconds, timeline entries written)."""
    store = SqlStore(url)
    await store.open()
    clock = ManualClock(YEAR)
    pipeline = Pipeline(
        store, load_playbooks(REPO / "playbooks", known_actions=ACTION_NAMES), clock
    )
    rng = random.Random(7)
    batch = -(-incidents // DAYS)
    began = time.perf_counter()
    try:
        probe = await ingest_batch(pipeline, clock, 0, 1, YEAR, rng)
        per_incident = len(await store.timeline(probe[0]))
        # The response adds ack, commander, mitigation and resolution entries (about 8 with
        # the timers and actions they cancel or schedule); notes make up the rest.
        notes = max(0, entries - per_incident - 8)
        await respond(pipeline, clock, probe, YEAR, notes, rng)
        first = 1
        day = 1
        while first < incidents:
            declared = YEAR + dt.timedelta(days=day, hours=rng.randint(0, 12))
            numbers = await ingest_batch(
                pipeline, clock, first, min(batch, incidents - first), declared, rng
            )
            await respond(pipeline, clock, numbers, declared, notes, rng)
            first += len(numbers)
            day += 1
            if first % 10_000 < batch:
                print(
                    f"  filled {first:,} incidents, {time.perf_counter() - began:.0f} s", flush=True
                )
        written = await count_entries(store)
    finally:
        await store.close()
    return time.perf_counter() - began, written


async def ingest_batch(
    pipeline: Pipeline,
    clock: ManualClock,
    first: int,
    count: int,
    declared: dt.datetime,
    rng: random.Random,
) -> list[int]:
    clock.set(declared)
    payloads = [
        Payload(alert(n, declared, rng), f"bench:{n}", None, {})
        for n in range(first, first + count)
    ]
    reports = await pipeline.ingest_many(payloads)
    return [
        outcome.incident_number
        for report in reports
        for outcome in report.outcomes
        if outcome.incident_number is not None
    ]


async def respond(
    pipeline: Pipeline,
    clock: ManualClock,
    numbers: Sequence[int],
    declared: dt.datetime,
    notes: int,
    rng: random.Random,
) -> None:
    clock.set(declared + RESPONSE_WITHIN)  # after every response time drawn below
    changes = [change for n in numbers for change in response(n, declared, notes, rng)]
    for start in range(0, len(changes), 5000):
        await pipeline.apply_many(changes[start : start + 5000])


async def count_entries(store: SqlStore) -> int:
    heads = await store.chain_heads()
    return sum(seq for seq, _ in heads.values())


@dataclass
class Run:
    seconds: float
    peak_mib: float
    output: str


def orchestrator(url: str, *args: str, finds_breaks: bool = False) -> Run:
    """`orchestrator ARGS` in a fresh process, as a user runs it: wall time and peak RSS."""
    env = os.environ | {"ORCH_DATABASE_URL": url, "COLUMNS": "160"}
    command = [sys.executable, "-m", "orchestrator", *args]
    began = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if child.returncode != 0 and not (finds_breaks and child.returncode == 1):
        raise SystemExit(f"{' '.join(args)} failed ({child.returncode}):\n{text[-2000:]}")
    return Run(seconds, usage.ru_maxrss / 1024, text)


async def add_notes(url: str, count: int) -> None:
    store = SqlStore(url)
    await store.open()
    try:
        clock = ManualClock(YEAR + dt.timedelta(days=365))
        pipeline = Pipeline(
            store, load_playbooks(REPO / "playbooks", known_actions=ACTION_NAMES), clock
        )
        who = RESPONDERS[0]
        await pipeline.apply_many(
            [(n, NoteAdded("follow-up filed", who)) for n in range(1, count + 1)]
        )
    finally:
        await store.close()


def report(name: str, run: Run, extra: str = "") -> None:
    print(f"{name:<34} {run.seconds:7.2f} s   peak RSS {run.peak_mib:6.0f} MiB   {extra}")


def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="evidence-scale-"))
    url = args.database_url or f"sqlite+aiosqlite:///{folder / 'year.db'}"
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(f"machine   {cpu_line()}")
    print(f"python    {platform.python_version()}")
    print(f"store     {backend}")
    try:
        if not args.skip_fill:
            if args.reset:
                reset_postgres(url)
            seconds, written = asyncio.run(fill(url, args.incidents, args.entries))
            print(f"fill      {args.incidents:,} incidents, {written:,} entries in {seconds:.0f} s")
        year = ("--from", "2026-01-01", "--to", "2026-12-31", "--by", "service")
        cold = orchestrator(url, "metrics", *year, "--rebuild")
        report("metrics, a year by service, cold", cold, "(every timeline folded)")
        warm = [orchestrator(url, "metrics", *year) for _ in range(3)]
        best = min(warm, key=lambda run: run.seconds)
        target = TARGET_METRICS[backend]
        verdict = "ok" if best.seconds <= target else "MISSED"
        times = ", ".join(f"{run.seconds:.2f}" for run in warm)
        report(
            "metrics, a year by service", best, f"runs {times} s; target <= {target} s {verdict}"
        )
        moved_count = min(1000, args.incidents)
        asyncio.run(add_notes(url, moved_count))
        moved = orchestrator(url, "metrics", *year)
        report(f"metrics after {moved_count:,} incidents moved", moved)

        verify = orchestrator(url, "evidence", "verify", "--json", finds_breaks=True)
        checked = json.loads(verify.output[verify.output.index("{") :])
        rate = checked["entries"] / verify.seconds
        verdict = "ok" if rate >= TARGET_VERIFY else "MISSED"
        report(
            "evidence verify (whole store)",
            verify,
            f"{checked['entries']:,} entries = {rate:,.0f}/s (process included); "
            f"target >= {TARGET_VERIFY:,} {verdict}; ok={checked['ok']}",
        )
        exports = (
            ()
            if args.skip_export
            else (
                ("quarter", ("--from", "2026-04-01", "--to", "2026-07-01")),  # --to is exclusive
                ("year", ("--from", "2026-01-01", "--to", "2027-01-01")),
            )
        )
        for label, period in exports:
            out = folder / f"evidence-{label}.zip"
            run = orchestrator(url, "evidence", "export", *period, "--out", str(out))
            size = out.stat().st_size / 2**20
            report(f"evidence export ({label})", run, f"{size:,.0f} MiB archive")
    finally:
        if args.keep:
            print(f"kept      {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=50, help="timeline entries per incident")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--reset", action="store_true", help="empty the PostgreSQL test database")
    parser.add_argument("--skip-fill", action="store_true", help="measure the store as it is")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file and archives")
    parser.add_argument("--skip-export", action="store_true", help="time metrics and verify only")
    main(parser.parse_args())
