"""Benchmark: how late the timer service fires timers, and how fast it catches up after a restart.

Lateness phase: opens --incidents incidents through the real pipeline (ErrorBudgetBurn alerts
matching the api-slo-burn playbook, one service each), cancels the timers that opening them set,
writes --timers escalation timers due evenly over the next --minutes, and runs the
real TimerService (system clock, --poll) until all of them have fired. The incidents stay
triggered, so every firing takes the full path: the level's step becomes an outbox action, the
timeline gets its entries, and the next round's timer is scheduled 15 minutes on (after the
run). It reports lateness (fired_at - due_at, read back from the store for every timer)
p50/p99/max, the CPU of this process over the run, and its memory.

Restart phase: opens fresh incidents, writes --overdue timers of the same kind due over the last
hour, closes the store, then opens a new store, pipeline and TimerService the way a restarted
process would, and measures the wall time from the service's start until none of them is
pending. Firing an overdue round-0 timer schedules round 1 fifteen minutes after it was due,
which for most of them is overdue as well; those follow-ups are reported next to the figure.

Nothing delivers the actions (no dispatcher); the targets are the issue's. On PostgreSQL, give
the benchmark a database of its own: --reset drops its schema (only if its name says "test"),
and the test suite resets orchestrator_test under anything else using it.

    .venv/bin/python bench/timer_lateness.py --timers 100000 --minutes 10 --overdue 10000
    .venv/bin/python bench/timer_lateness.py --timers 3000 --minutes 1 --overdue 2000 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/timer_bench_test --reset
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import resource
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from databases import reset_postgres
from machine import cpu_line
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from orchestrator.clock import SystemClock
from orchestrator.heap import settle_after_startup
from orchestrator.ingest.alert import SourceFormat
from orchestrator.pipeline import Payload, Pipeline
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.playbook.playbookset import PlaybookSet
from orchestrator.scheduler import TimerService
from orchestrator.store.engine import sync_url
from orchestrator.store.schema import timers as timers_table
from orchestrator.store.sql import SqlStore
from orchestrator.timers import Timer, TimerKind, TimerStatus

REPO = Path(__file__).resolve().parents[1]
PLAYBOOK = "api-slo-burn"
INGEST_BATCH = 500
WRITE_CHUNK = 5000
# The service starts this long before the first timer is due, plus a second per WRITE_CHUNK
# timers, so the writing is over before the firing begins and the two are not measured together.
LEAD_SECONDS = 5.0
STALL_SECONDS = 120.0
TARGET_P99_SECONDS = 1.0
TARGET_CATCH_UP_SECONDS = 5.0


@dataclass
class Lateness:
    timers: int
    fired: int
    lateness: list[float]  # seconds, one per fired timer, sorted
    write_seconds: float
    run_seconds: float
    cpu_seconds: float
    follow_ups: int
    rss_start_mib: float
    rss_max_mib: float


@dataclass
class CatchUp:
    overdue: int
    open_seconds: float
    seconds: float | None  # service start -> none of the overdue pending; None if it stalled
    everything_seconds: float | None  # ... -> nothing due at the restart pending, follow-ups too
    follow_ups: int
    cpu_seconds: float


def rss_mib() -> float:
    """This process's resident memory now (Linux), 0 where /proc is missing."""
    status = Path("/proc/self/status")
    if not status.exists():
        return 0.0
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(ordered: Sequence[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def ladder_id(round_start: dt.datetime) -> str:
    """The engine's name for one run of an escalation ladder (part of its timer keys), spelled
    out here because the engine's helpers are moving between modules."""
    return round_start.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")


def alert(token: str, index: int) -> bytes:
    labels = {
        "alertname": "ErrorBudgetBurn",
        "env": "prod",
        "service": f"timer-bench-{token}-{index}",
        "slo": "availability",
        "severity": "critical",
    }
    return json.dumps({"labels": labels, "annotations": {"summary": "budget burning"}}).encode()


async def open_incidents(store: SqlStore, playbooks: PlaybookSet, count: int) -> list[int]:
    """`count` new triggered incidents with no timers pending, so only the benchmark's fire."""
    pipeline = Pipeline(store, playbooks, SystemClock())
    token = uuid.uuid4().hex[:8]  # a reused store already has the services of earlier runs
    numbers: list[int] = []
    for start in range(0, count, INGEST_BATCH):
        batch = [
            Payload(alert(token, i), "timer-bench", SourceFormat.NATIVE)
            for i in range(start, min(count, start + INGEST_BATCH))
        ]
        for report in await pipeline.ingest_many(batch):
            if report.error:
                raise RuntimeError(f"the bench alert was rejected: {report.error}")
            numbers += [o.incident_number for o in report.outcomes if o.incident_number]
    if len(numbers) != count:
        raise RuntimeError(f"expected {count} new incidents, the pipeline opened {len(numbers)}")
    now = SystemClock().now()
    async with store.transaction() as tx:
        for number in numbers:
            await tx.cancel_timers(number, None, now)
    return numbers


def escalation_timers(
    numbers: Sequence[int],
    playbooks: PlaybookSet,
    first: dt.datetime,
    span: dt.timedelta,
    count: int,
) -> Iterator[Timer]:
    """`count` round-0 escalation timers due evenly from `first` over `span`, shaped as the
    engine's own (key, payload), dealt to the incidents in turn."""
    playbook = playbooks.get(PLAYBOOK)
    assert playbook is not None
    assert playbook.escalation is not None
    after = playbook.escalation.levels[0].after
    for i in range(count):
        number = numbers[i % len(numbers)]
        due = first + span * (i / max(count - 1, 1))
        round_start = due - after
        yield Timer(
            # Fresh incidents are on cycle 0; the key is the one escalation_timer() would give.
            key=f"{number}:0:esc:{ladder_id(round_start)}.0.0",
            incident_number=number,
            kind=TimerKind.ESCALATION.value,
            due_at=due,
            payload={"cycle": 0, "round": 0, "level": 0, "round_start": round_start.isoformat()},
        )


async def write_timers(store: SqlStore, timers: Iterator[Timer]) -> set[str]:
    keys: set[str] = set()
    chunk: list[Timer] = []

    async def flush() -> None:
        async with store.transaction() as tx:
            new = await tx.schedule_timers(chunk)
        if len(new) != len(chunk):
            # Two timers of one incident in the same second share a key: raise --incidents.
            raise RuntimeError(f"{len(chunk) - len(new)} timer keys collided; use more incidents")
        keys.update(timer.key for timer in chunk)
        chunk.clear()

    for timer in timers:
        chunk.append(timer)
        if len(chunk) >= WRITE_CHUNK:
            await flush()
    if chunk:
        await flush()
    return keys


class Reader:
    """The benchmark's own connection for watching and reading back the timers: its own, so
    watching neither goes through the store's internals nor takes the store's turns."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = sa.create_engine(sync_url(url), poolclass=NullPool)

    async def pending(self, numbers: Sequence[int], due_by: dt.datetime) -> tuple[int, int]:
        """Pending timers of these incidents due by `due_by`: all of them, and the benchmark's
        own (round 0; the follow-ups the firings schedule are round 1), in one query."""
        own = timers_table.c.key.like("%.0.0")
        query = sa.select(
            sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((own, 1), else_=0)), 0)
        ).where(
            timers_table.c.status == TimerStatus.PENDING.value,
            timers_table.c.due_at <= due_by,
            timers_table.c.incident_number.between(min(numbers), max(numbers)),
        )

        def read() -> tuple[int, int]:
            with self.engine.connect() as conn:
                total, mine = conn.execute(query).one()
                return int(total), int(mine)

        return await asyncio.to_thread(read)

    async def rows(
        self, numbers: Sequence[int]
    ) -> list[sa.Row[tuple[str, str, dt.datetime, dt.datetime | None]]]:
        query = sa.select(
            timers_table.c.key,
            timers_table.c.status,
            timers_table.c.due_at,
            timers_table.c.fired_at,
        ).where(timers_table.c.incident_number.between(min(numbers), max(numbers)))

        def read() -> list[sa.Row[tuple[str, str, dt.datetime, dt.datetime | None]]]:
            with self.engine.connect() as conn:
                return list(conn.execute(query))

        return await asyncio.to_thread(read)


@asynccontextmanager
async def timer_service(
    store: SqlStore, playbooks: PlaybookSet, poll: float
) -> AsyncIterator[asyncio.Task[None]]:
    """The real TimerService running in this process, as `serve` runs it, stopped on exit."""
    service = TimerService(store, Pipeline(store, playbooks, SystemClock()), SystemClock())
    settle_after_startup()  # as run_service does once the service is built
    stop = asyncio.Event()
    running = asyncio.create_task(service.run_forever(stop, poll=poll))
    try:
        yield running
    finally:
        stop.set()
        await running


def alive(running: asyncio.Task[None]) -> None:
    if running.done():
        running.result()  # the service died: show why


async def lateness_phase(args: argparse.Namespace, url: str, playbooks: PlaybookSet) -> Lateness:
    store = SqlStore(url)
    await store.open()
    reader = Reader(url)
    try:
        numbers = await open_incidents(store, playbooks, args.incidents)
        lead = LEAD_SECONDS + args.timers / WRITE_CHUNK
        first = SystemClock().now() + dt.timedelta(seconds=lead)
        span = dt.timedelta(minutes=args.minutes)
        began = time.perf_counter()
        keys = await write_timers(
            store, escalation_timers(numbers, playbooks, first, span, args.timers)
        )
        write_seconds = time.perf_counter() - began
        if SystemClock().now() > first:
            print(f"note                writing the timers ran past the first due ({lead:.0f} s)")
        rss_start = rss_max = rss_mib()
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        async with timer_service(store, playbooks, args.poll) as running:
            # Until the last timer is due and none is pending, or STALL_SECONDS after that.
            deadline = time.perf_counter() + lead + span.total_seconds() + STALL_SECONDS
            while time.perf_counter() < deadline:
                await asyncio.sleep(1.0)
                rss_max = max(rss_max, rss_mib())
                alive(running)
                overdue = SystemClock().now() > first + span
                if overdue and (await reader.pending(numbers, first + span))[0] == 0:
                    break
        run_seconds = time.perf_counter() - wall0
        used = cpu_seconds() - cpu0
        lateness: list[float] = []
        follow_ups = 0
        for key, status, due_at, fired_at in await reader.rows(numbers):
            if key not in keys:
                follow_ups += status != TimerStatus.CANCELLED.value
            elif fired_at is not None:
                lateness.append((fired_at - due_at).total_seconds())
        lateness.sort()
        return Lateness(
            args.timers,
            len(lateness),
            lateness,
            write_seconds,
            run_seconds,
            used,
            follow_ups,
            rss_start,
            rss_max,
        )
    finally:
        reader.engine.dispose()
        await store.close()


async def write_overdue(
    url: str, playbooks: PlaybookSet, incidents: int, overdue: int
) -> tuple[list[int], dt.datetime]:
    """The state a restart finds: `overdue` timers due over the last hour, on fresh incidents,
    written by a store that is then closed. Returns the incidents and the moment of the restart."""
    store = SqlStore(url)
    await store.open()
    try:
        numbers = await open_incidents(store, playbooks, incidents)
        span = dt.timedelta(hours=1) - dt.timedelta(seconds=1)
        first = SystemClock().now() - span
        await write_timers(store, escalation_timers(numbers, playbooks, first, span, overdue))
    finally:
        await store.close()
    return numbers, SystemClock().now()


async def restart_phase(args: argparse.Namespace, url: str, playbooks: PlaybookSet) -> CatchUp:
    numbers, restart = await write_overdue(url, playbooks, args.incidents, args.overdue)
    # The restarted process: a new store, pipeline and service.
    reader = Reader(url)
    store = SqlStore(url)
    began = time.perf_counter()
    await store.open()
    open_seconds = time.perf_counter() - began
    try:
        overdue_done: float | None = None
        everything_done: float | None = None
        moved, last_count = time.perf_counter(), -1
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        async with timer_service(store, playbooks, args.poll) as running:
            while everything_done is None:
                # The figure is only as fine as this interval; polling faster takes a noticeable
                # share of the CPU (and the GIL) from the service being measured.
                await asyncio.sleep(0.1)
                alive(running)
                pending, own = await reader.pending(numbers, restart)
                elapsed = time.perf_counter() - wall0
                if overdue_done is None and own == 0:
                    overdue_done = elapsed
                if pending == 0:
                    everything_done = elapsed
                if pending != last_count:
                    moved, last_count = time.perf_counter(), pending
                elif time.perf_counter() - moved > STALL_SECONDS:
                    print(f"note                catch-up stuck at {pending} pending")
                    break
        used = cpu_seconds() - cpu0
        follow_ups = sum(
            1
            for key, status, due_at, _ in await reader.rows(numbers)
            if key.endswith(".1.0") and status == TimerStatus.FIRED.value and due_at <= restart
        )
        return CatchUp(args.overdue, open_seconds, overdue_done, everything_done, follow_ups, used)
    finally:
        reader.engine.dispose()
        await store.close()


def machine_facts(args: argparse.Namespace, url: str) -> str:
    backend = sa.make_url(url).get_backend_name()
    store = f"{backend} ({'fresh file' if args.database_url is None else 'given URL'})"
    if backend == "postgresql":
        engine = sa.create_engine(sync_url(url), poolclass=NullPool)
        with engine.connect() as conn:
            version = conn.scalar(sa.text("show server_version"))
        engine.dispose()
        store = f"postgresql {str(version).split()[0]}"
    print(f"machine             {cpu_line()}")
    print(f"python              {platform.python_version()} on {platform.platform()}")
    print(f"sqlalchemy          {sa.__version__}")
    print(f"store               {store}")
    phases = []
    if not args.skip_lateness:
        phases.append(f"{args.timers} timers due over {args.minutes:g} min")
    if not args.skip_restart:
        phases.append(f"{args.overdue} overdue at a restart")
    print(
        f"workload            {', then '.join(phases)}; {args.incidents} triggered incidents "
        f"per phase ({PLAYBOOK}, full firing path), poll {args.poll} s"
    )
    return store


def report_lateness(result: Lateness) -> None:
    values = result.lateness
    print("\nlateness phase")
    print(
        f"  write             {result.timers} timers in {result.write_seconds:.1f} s "
        f"({result.timers / result.write_seconds:,.0f}/s, {WRITE_CHUNK} per transaction)"
    )
    print(
        f"  fired             {result.fired} of {result.timers} "
        f"in a {result.run_seconds:.0f} s run; "
        f"{result.follow_ups} next-round timers scheduled by the firings"
    )
    if values:
        print(
            f"  lateness          p50 {percentile(values, 0.5) * 1000:.0f} ms  "
            f"p99 {percentile(values, 0.99) * 1000:.0f} ms  max {values[-1] * 1000:.0f} ms "
            "(fired_at is stamped as the firing transaction begins)"
        )
    print(
        f"  CPU               {result.cpu_seconds:.1f} s = "
        f"{100 * result.cpu_seconds / result.run_seconds:.1f}% of one core over the run, "
        f"{1000 * result.cpu_seconds / max(result.fired, 1):.2f} s per 1k timers "
        "(this process; a database server's own CPU is not included)"
    )
    print(
        f"  RSS               {result.rss_start_mib:.0f} MiB at the service's start, "
        f"{result.rss_max_mib:.0f} MiB at most during the run"
    )


def report_catch_up(result: CatchUp) -> None:
    print("\nrestart phase")
    print(f"  store open        {result.open_seconds:.2f} s (migration check)")
    if result.seconds is None:
        print(f"  catch-up          did not finish: {result.overdue} overdue")
    else:
        print(
            f"  catch-up          {result.overdue} overdue fired {result.seconds:.2f} s after the "
            f"service started ({result.overdue / result.seconds:,.0f}/s)"
        )
    if result.everything_seconds is not None:
        print(
            f"  with follow-ups   {result.follow_ups} next-round timers were due by then too; "
            f"all {result.overdue + result.follow_ups} "
            f"fired after {result.everything_seconds:.2f} s"
        )
    print(f"  CPU               {result.cpu_seconds:.1f} s")


def table(store: str, lateness: Lateness | None, catch_up: CatchUp | None) -> None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\n{'store':<22}{'timers':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'CPU %':>7}"
        f"{'peak MiB':>9}{'catch-up s':>11}"
    )
    cells = ["-"] * 5
    if lateness is not None and lateness.lateness:
        values = lateness.lateness
        cells = [
            str(lateness.timers),
            f"{percentile(values, 0.5) * 1000:.0f}",
            f"{percentile(values, 0.99) * 1000:.0f}",
            f"{values[-1] * 1000:.0f}",
            f"{100 * lateness.cpu_seconds / lateness.run_seconds:.1f}",
        ]
    catch = "-"
    if catch_up is not None:
        catch = "stuck" if catch_up.seconds is None else f"{catch_up.seconds:.2f}"
    print(
        f"{store:<22}{cells[0]:>8}{cells[1]:>8}{cells[2]:>8}{cells[3]:>8}{cells[4]:>7}"
        f"{peak:>9.0f}{catch:>11}"
    )
    if lateness is not None:
        p99 = percentile(lateness.lateness, 0.99) if lateness.lateness else float("inf")
        complete = lateness.fired == lateness.timers
        print(
            f"lateness p99        {p99:.3f} s   target <= {TARGET_P99_SECONDS:g} s   "
            f"{verdict(p99 <= TARGET_P99_SECONDS and complete)}"
            + ("" if complete else f" ({lateness.timers - lateness.fired} never fired)")
        )
    if catch_up is not None:
        seconds = catch_up.seconds if catch_up.seconds is not None else float("inf")
        print(
            f"restart catch-up    {seconds:.2f} s   target <= {TARGET_CATCH_UP_SECONDS:g} s "
            f"for {catch_up.overdue}   {verdict(seconds <= TARGET_CATCH_UP_SECONDS)}"
        )


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="timer-bench-") as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        if args.reset:
            reset_postgres(url)
        store = machine_facts(args, url)
        playbooks = load_playbooks(REPO / "playbooks", known_actions=ACTION_NAMES)
        lateness = None if args.skip_lateness else await lateness_phase(args, url, playbooks)
        if lateness is not None:
            report_lateness(lateness)
        catch_up = None if args.skip_restart else await restart_phase(args, url, playbooks)
        if catch_up is not None:
            report_catch_up(catch_up)
        table(store, lateness, catch_up)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", type=int, default=100_000, help="pending timers to fire")
    parser.add_argument("--minutes", type=float, default=10.0, help="spread of their due times")
    parser.add_argument("--overdue", type=int, default=10_000, help="overdue at the restart")
    parser.add_argument("--incidents", type=int, default=2000, help="triggered incidents per phase")
    parser.add_argument("--poll", type=float, default=0.2, help="TimerService poll, seconds")
    parser.add_argument("--skip-lateness", action="store_true")
    parser.add_argument("--skip-restart", action="store_true")
    parser.add_argument(
        "--database-url", help="SQLAlchemy URL; default: a fresh SQLite file in a temp folder"
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="PostgreSQL: drop and recreate the schema first (test databases only)",
    )
    asyncio.run(main(parser.parse_args()))
