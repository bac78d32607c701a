"""Scale-out throughput: 1, 2 and 3 `orchestrator run` processes in one consumer group on one
PostgreSQL database, consuming the same storm from a fresh six-partition topic.

For each process count it empties the database, produces the storm (alerts for many services,
each re-sent, keyed by service as the intake keys them), starts the processes, and times until
the store holds every alert; actions go to the dry-run console (no vendor calls), so the figure
is the intake: consume, decide, record, commit offsets.

    .venv/bin/python bench/scale_out.py --bootstrap 127.0.0.1:19092 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:55432/scale_bench_test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from databases import reset_postgres
from machine import cpu_line
from sqlalchemy import text

from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 6


def alert(service: str, copy: int) -> bytes:
    return json.dumps(
        {
            "labels": {
                "alertname": "PostgresDown",
                "env": "prod",
                "service": service,
                "cluster": "eu-west-1",
                "severity": "critical",
                "replica": str(copy),  # each copy its own alert, joining the service's incident
            },
            "starts_at": "2026-03-02T18:30:00+00:00",
        }
    ).encode()


async def new_topic(bootstrap: str) -> str:
    name = f"scale-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def produce(bootstrap: str, topic: str, services: int, copies: int) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    sent = 0
    try:
        for copy in range(copies):
            batch = [
                await producer.send(topic, alert(f"svc-{n:04d}", copy), key=f"svc-{n:04d}".encode())
                for n in range(services)
            ]
            await asyncio.gather(*batch)
            sent += len(batch)
    finally:
        await producer.stop()
    return sent


async def run(args: argparse.Namespace, processes: int) -> tuple[float, int]:
    reset_postgres(args.database_url)
    store = SqlStore(args.database_url)
    await store.open()  # migrated once, before the processes race to
    topic = await new_topic(args.bootstrap)
    expected = await produce(args.bootstrap, topic, args.services, args.copies)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ORCH_")},
        "ORCH_DATABASE_URL": args.database_url,
        "ORCH_PLAYBOOKS_DIR": str(REPO / "playbooks"),
        "ORCH_KAFKA_BOOTSTRAP": args.bootstrap,
        "ORCH_KAFKA_TOPICS": topic,
        "ORCH_KAFKA_GROUP": topic,
        "ORCH_HTTP_PORT": "0",
        "ORCH_DRY_RUN": "true",
    }
    began = time.perf_counter()
    running = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            env=env,
            cwd=REPO,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(processes)
    ]
    try:
        while (count := await asyncio.to_thread(alerts_in, store)) < expected:
            if time.perf_counter() - began > args.timeout:
                raise SystemExit(f"{processes} process(es): {count} of {expected} after timeout")
            await asyncio.sleep(0.2)
        took = time.perf_counter() - began
    finally:
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            await process.wait()
        await store.close()
    return took, expected


def alerts_in(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(text("SELECT count(*) FROM alerts")) or 0)


async def main(args: argparse.Namespace) -> None:
    print(f"machine   {cpu_line()}")
    print(f"storm     {args.services} services x {args.copies} alerts, {PARTITIONS} partitions")
    print(f"{'processes':>9} {'seconds':>8} {'alerts/s':>9} {'vs 1':>6}")
    first = None
    for processes in args.processes:
        took, alerts = await run(args, processes)
        rate = alerts / took
        first = first or rate
        print(f"{processes:>9} {took:>8.1f} {rate:>9.0f} {rate / first:>5.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--database-url", required=True, help="a PostgreSQL test database")
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--timeout", type=float, default=600.0)
    asyncio.run(main(parser.parse_args()))
