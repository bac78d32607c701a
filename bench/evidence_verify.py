"""Benchmark: how fast evidence is checked and exported. Fills a store with incidents through the
real pipeline (each with its chained timeline), signs a checkpoint, then times
`evidence verify` on the store, the export of the archive, and the offline verification of
that archive, with peak memory.

    .venv/bin/python bench/evidence_verify.py --incidents 30000
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
from pathlib import Path

from machine import cpu_line

from orchestrator.clock import ManualClock
from orchestrator.evidence import take_checkpoint, verify_archive, verify_store
from orchestrator.evidence_export import export_archive
from orchestrator.pipeline import Payload, Pipeline
from orchestrator.playbook.loader import load_playbooks
from orchestrator.report.checkpoints import public_hex, signing_key
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[1]
START = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
TARGET_ENTRIES_PER_SECOND = 200_000
KEY = signing_key("3c" * 32)


def alert(i: int) -> bytes:
    """A database-down alert for its own service: every alert opens an incident."""
    return json.dumps(
        {
            "labels": {
                "alertname": "PostgresDown",
                "env": "prod",
                "service": f"db-{i}",
                "cluster": "eu-west-1",
                "severity": "critical",
            },
            "annotations": {"summary": f"db-{i} is down"},
            "starts_at": (START + dt.timedelta(seconds=i)).isoformat(),
        }
    ).encode()


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(args: argparse.Namespace) -> None:
    print(f"machine   {cpu_line()}")
    print(f"python    {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="evidence-bench-") as folder:
        store = SqlStore(f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}")
        await store.open()
        clock = ManualClock(START)
        pipeline = Pipeline(store, load_playbooks(REPO / "playbooks"), clock)
        began = time.perf_counter()
        for first in range(0, args.incidents, 500):
            batch = [
                Payload(alert(i), f"bench:{i}", None, {})
                for i in range(first, min(first + 500, args.incidents))
            ]
            await pipeline.ingest_many(batch)
        await take_checkpoint(store, KEY, clock)
        print(f"fill      {args.incidents} incidents in {time.perf_counter() - began:.1f} s")
        rss_before = peak_mib()

        began = time.perf_counter()
        live = await verify_store(store, public_hex(KEY))
        seconds = time.perf_counter() - began
        assert live.ok, live.problems[:3]
        rate = live.entries / seconds
        verdict = "ok" if rate >= TARGET_ENTRIES_PER_SECOND else "MISSED"
        print(
            f"verify    store: {live.entries} entries in {live.chains} chains, {seconds:.2f} s "
            f"= {rate:,.0f} entries/s   target >= {TARGET_ENTRIES_PER_SECOND:,}   {verdict}"
        )

        archive = Path(folder) / "evidence.zip"
        began = time.perf_counter()
        with archive.open("wb") as sink:
            manifest = await export_archive(store, sink, clock, trusted_key=public_hex(KEY))
        seconds = time.perf_counter() - began
        size = archive.stat().st_size / 2**20
        print(
            f"export    {manifest['counts']['incidents']} incidents, {size:.1f} MiB archive, "
            f"{seconds:.2f} s; peak RSS {peak_mib():.0f} MiB (was {rss_before:.0f} before)"
        )

        began = time.perf_counter()
        offline = verify_archive(archive, public_hex(KEY))
        seconds = time.perf_counter() - began
        assert offline.ok, offline.problems[:3]
        print(
            f"verify    archive: {offline.entries} entries, {seconds:.2f} s "
            f"= {offline.entries / seconds:,.0f} entries/s"
        )
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=30_000)
    asyncio.run(main(parser.parse_args()))
