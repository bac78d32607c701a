"""A consumer process for the crash tests: runs the Kafka intake on a SQLite file until told to
stop, or kills itself with SIGKILL right after a batch's transaction commits (before the offset
commit) when ORCH_TEST_CRASH_AFTER_STORE is set.

    python tests/integration/kafka_worker.py BOOTSTRAP TOPIC GROUP DATABASE_URL
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from orchestrator.clock import SystemClock
from orchestrator.ingest.kafka import KafkaConfig, KafkaIntake
from orchestrator.pipeline import Payload, Pipeline
from orchestrator.playbook.loader import load_playbooks
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[2]


class CrashAfterStore(Pipeline):
    async def ingest_many(self, payloads: list[Payload]) -> list:  # type: ignore[override]
        reports = await super().ingest_many(payloads)
        print(f"stored {len(payloads)}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # after the store commit, before the offset commit
        return reports


async def main(bootstrap: str, topic: str, group: str, url: str) -> None:
    store = SqlStore(url)
    await store.open()
    playbooks = load_playbooks(REPO / "playbooks")
    kind = CrashAfterStore if os.environ.get("ORCH_TEST_CRASH_AFTER_STORE") else Pipeline
    pipeline = kind(store, playbooks, SystemClock())
    intake = KafkaIntake(pipeline, KafkaConfig(bootstrap, {topic: None}, group_id=group))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await intake.start()
    print("ready", flush=True)
    await stop.wait()
    await intake.stop()
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
