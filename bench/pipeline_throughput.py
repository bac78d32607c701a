"""Benchmark: alerts per second through the real pipeline (normalize, match, decide, commit).

Generates Alertmanager webhooks for many services (new incidents, alerts joining them, resends
and resolves), feeds them through Pipeline.ingest_bytes on a SQLite file, delivers the resulting
actions with the dry-run handler, and prints throughput, per-payload latency and peak memory.

    .venv/bin/python bench/pipeline_throughput.py --payloads 5000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from handlers.console import ConsoleHandler
from orchestrator.clock import ManualClock
from orchestrator.dispatcher import Dispatcher
from orchestrator.pipeline import Payload, Pipeline
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.store.sql import SqlStore

START = dt.datetime(2026, 11, 25, 14, 0, tzinfo=dt.UTC)
KINDS = [
    ({"alertname": "PostgresDown", "severity": "critical"}, "cluster"),
    ({"alertname": "ErrorBudgetBurn", "severity": "critical", "slo": "availability"}, "slo"),
    ({"alertname": "HighLatencyP99", "severity": "warning"}, "instance"),
    ({"alertname": "DiskSpaceLow", "severity": "warning"}, "instance"),  # unmatched noise
]


def payload(i: int, services: int) -> bytes:
    """Payload i: service i % services; every 4th is a resend, every 7th resolves."""
    service = f"svc-{i % services}"
    base, extra = KINDS[i % len(KINDS)]
    starts = START + dt.timedelta(seconds=(i // 4) * 4)
    status = "resolved" if i % 7 == 6 else "firing"
    labels = {**base, "service": service, "env": "prod", extra: f"{extra}-{i % 3}"}
    alert = {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{base['alertname']} on {service}"},
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": (starts + dt.timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        if status == "resolved"
        else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": hashlib.sha256(
            f"{service}|{base['alertname']}|{i % 3}".encode()
        ).hexdigest()[:16],
    }
    message = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{base["alertname"]}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "incident-orchestrator",
        "groupLabels": {"alertname": base["alertname"]},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [alert],
    }
    return json.dumps(message).encode()


async def main(payloads: int, services: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = SqlStore(f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}")
        await store.open()
        clock = ManualClock(START)
        playbooks = load_playbooks("playbooks", known_actions=ACTION_NAMES)
        dispatcher = Dispatcher(
            store, dict.fromkeys(ACTION_NAMES, ConsoleHandler(ACTION_NAMES)), clock
        )
        pipeline = Pipeline(store, playbooks, clock)
        bodies = [payload(i, services) for i in range(payloads)]
        latencies = []
        began = time.perf_counter()
        for start in range(0, len(bodies), batch):
            clock.advance(1)
            chunk = [Payload(body, "bench") for body in bodies[start : start + batch]]
            t0 = time.perf_counter()
            await pipeline.ingest_many(chunk)
            latencies.append((time.perf_counter() - t0) / len(chunk))
        ingest_seconds = time.perf_counter() - began
        t0 = time.perf_counter()
        delivered = await dispatcher.drain()
        dispatch_seconds = time.perf_counter() - t0
        incidents = len(await store.list_incidents(limit=100_000))
        await store.close()
    latencies.sort()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"payloads            {payloads} ({services} services, {batch} per transaction)")
    print(f"incidents opened    {incidents}")
    print(
        f"ingest              {ingest_seconds:.2f} s = {payloads / ingest_seconds:.0f} payloads/s"
    )
    print(
        f"per payload         p50 {statistics.median(latencies) * 1000:.2f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.2f} ms, "
        f"max {latencies[-1] * 1000:.2f} ms"
    )
    print(
        f"dispatch            {delivered} actions in {dispatch_seconds:.2f} s = "
        f"{delivered / max(dispatch_seconds, 1e-9):.0f} actions/s"
    )
    print(f"peak RSS            {peak_mib:.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payloads", type=int, default=5000)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1, help="payloads per store transaction")
    args = parser.parse_args()
    asyncio.run(main(args.payloads, args.services, args.batch))
