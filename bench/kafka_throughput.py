"""Benchmark: the Kafka intake against a real broker, next to what the broker alone delivers.

For each mix (storm: alerts for 100 services joining their open incidents; new: every alert
opens an incident) it produces N Alertmanager webhooks, one alert per message keyed by
fingerprint, to a fresh 6-partition topic, then measures
  (a) the raw aiokafka consume rate of that topic (getmany loop, no processing),
  (b) the orchestrator's rate: KafkaIntake -> Pipeline.ingest_many -> a fresh store, until the
      store holds all N alerts,
and finally (c) latency at a fixed produce rate: produce -> store commit for the orchestrator,
next to produce -> consume for a plain consumer of the same topic, measured at the same time.
It prints the figures next to the targets. Actions are queued, not delivered (no dispatcher).

    deploy/kafka/kafka.sh start -d /tmp/kafka-bench -p 19192
    .venv/bin/python bench/kafka_throughput.py --bootstrap 127.0.0.1:19192 --alerts 20000
    deploy/kafka/kafka.sh stop -d /tmp/kafka-bench --remove
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import multiprocessing
import platform
import resource
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from machine import cpu_line
from sqlalchemy import Engine, create_engine, make_url, text

from orchestrator.clock import SystemClock
from orchestrator.ingest.kafka import KafkaConfig, KafkaIntake
from orchestrator.pipeline import IngestReport, Payload, Pipeline
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.store.engine import sync_url
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 6
STORM_SERVICES = 100
POLL_SECONDS = 0.25
STALL_SECONDS = 120.0
SENT_HEADER = "x-bench-sent"  # the producer's wall clock (time.time()) when it sent the message
WARMUP_HEADER = "x-bench-warmup"
# (alertname, severity): all three match a shipped playbook (api-slo-burn, database-unavailable).
KINDS = [
    ("ErrorBudgetBurn", "critical"),
    ("PostgresDown", "critical"),
    ("HighLatencyP99", "warning"),
]
TARGET_STORM_RATIO = 0.5
TARGET_NEW_INCIDENTS = 2000.0
TARGET_P99_MARGIN_MS = 50.0


def rfc3339(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def webhook(service: str, kind: int, starts: dt.datetime) -> tuple[bytes, bytes]:
    """An Alertmanager v4 webhook carrying one firing alert, and its key (the fingerprint)."""
    alertname, severity = KINDS[kind % len(KINDS)]
    labels = {
        "alertname": alertname,
        "env": "prod",
        "service": service,
        "cluster": "eu-west-1",
        "severity": severity,
    }
    fingerprint = hashlib.sha256(f"{service}|{alertname}".encode()).hexdigest()[:16]
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"{alertname} on {service}"},
        "startsAt": rfc3339(starts),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": fingerprint,
    }
    message = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}", service="{service}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "incident-orchestrator",
        "groupLabels": {"alertname": alertname, "service": service},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [alert],
    }
    return fingerprint.encode(), json.dumps(message).encode()


def messages(mix: str, count: int, token: str) -> Iterator[tuple[bytes, bytes]]:
    """storm: 100 services (one fingerprint each), a distinct startsAt per alert, so every alert
    is a new occurrence joining its service's open incident. new: one service per alert, so
    every alert opens an incident. `token` keeps runs apart when a store is reused."""
    base = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    for i in range(count):
        if mix == "storm":
            service = i % STORM_SERVICES
            yield webhook(f"svc-{token}-{service}", service, base + dt.timedelta(milliseconds=i))
        else:
            yield webhook(f"svc-{token}-{i}", i, base)


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create_topic(bootstrap: str, mix: str) -> str:
    topic = fresh(f"bench-{mix}")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    return topic


async def produce(
    bootstrap: str, topic: str, batch: Iterable[tuple[bytes, bytes]]
) -> tuple[float, int]:
    """Sends everything as fast as the client batches it; returns the seconds and bytes sent."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024, acks=1
    )
    await producer.start()
    try:
        began = time.perf_counter()
        pending: list[asyncio.Future[Any]] = []
        sent = 0
        for key, value in batch:
            sent += len(value)
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return time.perf_counter() - began, sent
    finally:
        await producer.stop()


@dataclass
class Rate:
    count: int
    startup: float  # start() -> first batch in hand (group join, first fetch), seconds
    seconds: float  # start() -> last record done, seconds

    @property
    def per_second(self) -> float:
        return self.count / max(self.seconds, 1e-9)


async def raw_consume(bootstrap: str, topic: str, count: int, max_records: int) -> Rate:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=fresh("bench-raw"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    began = time.perf_counter()
    await consumer.start()
    try:
        seen = 0
        first: float | None = None
        async with asyncio.timeout(STALL_SECONDS):
            while seen < count:
                batch = await consumer.getmany(timeout_ms=200, max_records=max_records)
                if batch and first is None:
                    first = time.perf_counter()
                seen += sum(len(records) for records in batch.values())
        done = time.perf_counter()
    finally:
        await consumer.stop()
    assert first is not None
    return Rate(seen, first - began, done - began)


class TimedPipeline(Pipeline):
    """The real pipeline, noting when each batch was handed over and when its transaction
    committed, and per message how long after its produce time that was."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first_batch: float | None = None
        self.last_commit = 0.0
        self.batches = 0
        self.records = 0
        self.warm = False
        self.waited: list[float] = []  # produce -> handed to the pipeline, seconds
        self.committed: list[float] = []  # produce -> store commit, seconds

    async def ingest_many(self, payloads: Sequence[Payload]) -> list[IngestReport]:
        entered, wall_in = time.perf_counter(), time.time()
        if self.first_batch is None:
            self.first_batch = entered
        reports = await super().ingest_many(payloads)
        self.last_commit, wall_out = time.perf_counter(), time.time()
        self.batches += 1
        self.records += len(payloads)
        for payload in payloads:
            sent = payload.headers.get(SENT_HEADER)
            if sent is not None:
                self.waited.append(wall_in - float(sent))
                self.committed.append(wall_out - float(sent))
            elif WARMUP_HEADER in payload.headers:
                self.warm = True
        return reports


@dataclass
class Database:
    """The store under test, and the benchmark's own connection for counting its rows (its own,
    so the counting neither depends on the store's internals nor takes the store's turns)."""

    store: SqlStore
    reader: Engine

    async def count(self, table: str) -> int:
        def read() -> int:
            with self.reader.connect() as conn:
                return int(conn.scalar(text(f"select count(*) from {table}")) or 0)

        return await asyncio.to_thread(read)


@asynccontextmanager
async def opened_store(database_url: str | None) -> AsyncIterator[Database]:
    """The given database, or a fresh SQLite file that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="kafka-bench-") as folder:
        url = make_url(database_url or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}")
        store = SqlStore(url.render_as_string(hide_password=False))
        await store.open()
        reader = create_engine(sync_url(url.render_as_string(hide_password=False)))
        try:
            yield Database(store, reader)
        finally:
            reader.dispose()
            await store.close()


async def wait_until(
    progress: Callable[[], Any], target: int, what: str, *, interval: float = POLL_SECONDS
) -> None:
    """Polls `progress()` (a number, or an awaitable of one) until it reaches `target`; gives up
    when it stops moving for STALL_SECONDS."""
    last, moved = -1, time.perf_counter()
    while True:
        value = progress()
        if asyncio.iscoroutine(value):
            value = await value
        if value >= target:
            return
        if value != last:
            last, moved = value, time.perf_counter()
        elif time.perf_counter() - moved > STALL_SECONDS:
            raise TimeoutError(f"{what}: stuck at {value} of {target} for {STALL_SECONDS:.0f} s")
        await asyncio.sleep(interval)


@dataclass
class Intake:
    rate: Rate
    incidents: int
    batches: int


def make_pipeline(store: SqlStore) -> TimedPipeline:
    playbooks = load_playbooks(REPO / "playbooks", known_actions=ACTION_NAMES)
    return TimedPipeline(store, playbooks, SystemClock())


async def orchestrator_consume(
    bootstrap: str, topic: str, count: int, database_url: str | None, max_records: int
) -> Intake:
    async with opened_store(database_url) as database:
        alerts_before = await database.count("alerts")
        incidents_before = await database.count("incidents")
        pipeline = make_pipeline(database.store)
        intake = KafkaIntake(
            pipeline,
            KafkaConfig(bootstrap, {topic: None}, group_id=fresh("bench"), max_records=max_records),
        )
        began = time.perf_counter()
        await intake.start()
        try:
            await wait_until(
                lambda: database.count("alerts"), alerts_before + count, "alerts recorded"
            )
        finally:
            await intake.stop()
        incidents = await database.count("incidents") - incidents_before
    assert pipeline.first_batch is not None
    rate = Rate(count, pipeline.first_batch - began, pipeline.last_commit - began)
    return Intake(rate, incidents, pipeline.batches)


def load_process(
    bootstrap: str, topic: str, mix: str, rate: float, seconds: float, ready: Event, out: Connection
) -> None:
    """The paced producer and the reference consumer, in their own process so the
    orchestrator's work cannot delay their clocks."""
    out.send(asyncio.run(paced_load(bootstrap, topic, mix, rate, seconds, ready)))
    out.close()


async def paced_load(
    bootstrap: str, topic: str, mix: str, rate: float, seconds: float, ready: Event
) -> dict[str, Any]:
    batch = list(messages(mix, int(rate * seconds), fresh("lat")))
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=fresh("bench-ref"),
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
    await consumer.start()
    await producer.start()
    latencies: list[float] = []
    warm = asyncio.Event()

    async def consume() -> None:
        while len(latencies) < len(batch):
            records = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for record in (r for rs in records.values() for r in rs):
                headers = dict(record.headers or ())
                if SENT_HEADER in headers:
                    latencies.append(now - float(headers[SENT_HEADER]))
                elif WARMUP_HEADER in headers:
                    warm.set()

    reading = asyncio.create_task(consume())
    try:
        key, value = webhook(fresh("warmup"), 0, dt.datetime.now(dt.UTC))
        await producer.send_and_wait(topic, value, key=key, headers=[(WARMUP_HEADER, b"1")])
        async with asyncio.timeout(60):
            await warm.wait()
        if not await asyncio.to_thread(ready.wait, STALL_SECONDS):
            raise TimeoutError("the orchestrator did not take the warm-up message")
        began = time.perf_counter()
        for index, (key, value) in enumerate(batch):
            ahead = began + index / rate - time.perf_counter()
            if ahead > 0:
                await asyncio.sleep(ahead)
            sent = repr(time.time()).encode()
            await producer.send(topic, value, key=key, headers=[(SENT_HEADER, sent)])
        produced = time.perf_counter() - began
        await producer.flush()
        async with asyncio.timeout(STALL_SECONDS):
            await reading
    finally:
        reading.cancel()
        await producer.stop()
        await consumer.stop()
    return {"sent": len(batch), "seconds": produced, "broker": latencies}


@dataclass
class Latency:
    sent: int
    produce_seconds: float
    drain_seconds: float  # paced production began -> the orchestrator committed the last alert
    broker: list[float]
    waited: list[float] = field(default_factory=list)
    committed: list[float] = field(default_factory=list)


async def latency_run(
    bootstrap: str,
    mix: str,
    rate: float,
    seconds: float,
    database_url: str | None,
    max_records: int,
) -> Latency:
    topic = await create_topic(bootstrap, mix)
    async with opened_store(database_url) as database:
        pipeline = make_pipeline(database.store)
        intake = KafkaIntake(
            pipeline,
            KafkaConfig(bootstrap, {topic: None}, group_id=fresh("bench"), max_records=max_records),
        )
        await intake.start()
        context = multiprocessing.get_context("spawn")
        ready = context.Event()
        receive, send = context.Pipe(duplex=False)
        child = context.Process(
            target=load_process, args=(bootstrap, topic, mix, rate, seconds, ready, send)
        )
        child.start()
        try:
            await wait_until(lambda: int(pipeline.warm), 1, "warm-up message", interval=0.05)
            ready.set()
            began = time.perf_counter()
            result = await asyncio.to_thread(receive.recv)
            await wait_until(lambda: len(pipeline.committed), result["sent"], "timed alerts")
            drained = pipeline.last_commit - began
        finally:
            await asyncio.to_thread(child.join, 30)
            await intake.stop()
    return Latency(
        result["sent"],
        result["seconds"],
        drained,
        result["broker"],
        pipeline.waited,
        pipeline.committed,
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def machine_facts(args: argparse.Namespace) -> None:
    print(f"machine             {cpu_line()}")
    print(f"python              {platform.python_version()} on {platform.platform()}")
    print(f"aiokafka            {aiokafka.__version__}, broker {args.bootstrap}")
    store = args.database_url.split("://", 1)[0] if args.database_url else "sqlite (fresh file)"
    print(f"store               {store}")
    print(
        f"workload            {args.alerts} alerts per mix, one per message, "
        f"{PARTITIONS} partitions, max_records {args.max_records}"
    )


async def throughput(args: argparse.Namespace, mix: str) -> None:
    topic = await create_topic(args.bootstrap, mix)
    produced, size = await produce(args.bootstrap, topic, messages(mix, args.alerts, fresh("run")))
    shape = (
        f"{STORM_SERVICES} services/fingerprints, alerts join open incidents"
        if mix == "storm"
        else "one service per alert, every alert opens an incident"
    )
    print(f"\n{mix} mix: {shape}")
    print(
        f"  produce           {args.alerts} messages ({size / args.alerts:.0f} B avg) "
        f"in {produced:.2f} s = {args.alerts / produced:,.0f} msg/s"
    )
    raw = await raw_consume(args.bootstrap, topic, args.alerts, args.max_records)
    print(
        f"  (a) raw consume   {raw.count} in {raw.seconds:.2f} s = {raw.per_second:,.0f} msg/s "
        f"(from start(); join + first fetch {raw.startup:.2f} s)"
    )
    ran = await orchestrator_consume(
        args.bootstrap, topic, args.alerts, args.database_url, args.max_records
    )
    print(
        f"  (b) orchestrator  {ran.rate.count} in {ran.rate.seconds:.2f} s "
        f"= {ran.rate.per_second:,.0f} alerts/s "
        f"(from start(); join + first fetch {ran.rate.startup:.2f} s; {ran.batches} batches, "
        f"{ran.rate.count / max(ran.batches, 1):.0f} records avg)"
    )
    ratio = ran.rate.per_second / raw.per_second
    incidents_per_second = ran.incidents / max(ran.rate.seconds, 1e-9)
    print(f"  incidents         {ran.incidents} opened = {incidents_per_second:,.0f} incidents/s")
    if mix == "storm":
        print(
            f"  (b)/(a)           {ratio:.4f}   target >= {TARGET_STORM_RATIO}   "
            f"{verdict(ratio >= TARGET_STORM_RATIO)}"
        )
    else:
        print(f"  (b)/(a)           {ratio:.4f}")
        print(
            f"  incidents/s       {incidents_per_second:,.0f}   "
            f"target >= {TARGET_NEW_INCIDENTS:,.0f} (SQLite)   "
            f"{verdict(incidents_per_second >= TARGET_NEW_INCIDENTS)}"
        )


async def latency(args: argparse.Namespace, mix: str) -> None:
    result = await latency_run(
        args.bootstrap, mix, args.rate, args.latency_seconds, args.database_url, args.max_records
    )
    print(f"\nlatency, {mix} mix: {args.rate:.0f} alerts/s for {args.latency_seconds:.0f} s")
    print(
        f"  produced          {result.sent} in {result.produce_seconds:.2f} s "
        f"= {result.sent / result.produce_seconds:,.0f} msg/s"
    )
    rows = [
        ("broker", "produce -> plain consumer", result.broker),
        ("orchestrator in", "produce -> batch handed over", result.waited),
        ("orchestrator", "produce -> store commit", result.committed),
    ]
    for name, meaning, values in rows:
        print(
            f"  {name:<17} p50 {percentile(values, 0.5) * 1000:8.1f} ms  "
            f"p99 {percentile(values, 0.99) * 1000:8.1f} ms  "
            f"max {max(values) * 1000:8.1f} ms   ({meaning}, n={len(values)})"
        )
    p50 = (percentile(result.committed, 0.5) - percentile(result.broker, 0.5)) * 1000
    p99 = (percentile(result.committed, 0.99) - percentile(result.broker, 0.99)) * 1000
    print(
        f"  difference        p50 {p50:+8.1f} ms  p99 {p99:+8.1f} ms   "
        f"target p99 <= +{TARGET_P99_MARGIN_MS:.0f} ms   {verdict(p99 <= TARGET_P99_MARGIN_MS)}"
    )
    managed = result.sent / result.drain_seconds
    if managed < 0.95 * args.rate:
        print(
            f"  note              the orchestrator kept up with only {managed:,.0f} alerts/s of "
            f"{args.rate:,.0f}: these latencies are mostly its backlog"
        )


async def main(args: argparse.Namespace) -> None:
    machine_facts(args)
    mixes = ["storm", "new"] if args.mix == "both" else [args.mix]
    for mix in mixes:
        await throughput(args, mix)
    if not args.skip_latency:
        for mix in mixes:
            await latency(args, mix)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS            {peak:.0f} MiB (the process running the intake)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, host:port")
    parser.add_argument("--alerts", type=int, default=100_000, help="alerts per mix")
    parser.add_argument("--mix", choices=["storm", "new", "both"], default="both")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--rate", type=float, default=1000.0, help="alerts/s for the latency run")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument(
        "--database-url", help="SQLAlchemy async URL; default: a fresh SQLite file per run"
    )
    parser.add_argument("--max-records", type=int, default=500, help="records per batch")
    asyncio.run(main(parser.parse_args()))
