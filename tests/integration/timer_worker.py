"""A timer replica for the multi-process timer tests: runs the TimerService on a store until
SIGTERM, or, with ORCH_TEST_CRASH_AFTER_CLAIM set, kills itself with SIGKILL right after its
first claim that returned timers, so their leases are live and none of them has fired.
ORCH_TEST_START_AT (epoch seconds) holds its first claim back until then.

    python tests/integration/timer_worker.py DATABASE_URL [LEASE_SECONDS]

Prints "ready" once the store is open. A crashing worker prints "claimed N" and then one JSON
line with the claim time, the lease and the claimed keys, so the test can tell when those
leases ran out and check who fired the timers afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import sys
from pathlib import Path

from orchestrator.clock import SystemClock
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.loader import load_playbooks
from orchestrator.scheduler import TimerService
from orchestrator.store.protocols import Timer
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[2]
POLL = 0.05
# Smaller than the service's default so that two replicas' claims interleave over a backlog
# of a few hundred timers instead of one replica taking nearly all of it in one claim.
BATCH = 25


class CrashAfterClaim(SqlStore):
    async def claim_due_timers(
        self, now: dt.datetime, limit: int, lease: dt.timedelta, drill_id: str | None = None
    ) -> list[Timer]:
        claimed = await super().claim_due_timers(now, limit, lease, drill_id)
        if claimed:
            print(f"claimed {len(claimed)}", flush=True)
            held = {
                "now": now.isoformat(),
                "lease": lease.total_seconds(),
                "keys": [t.key for t in claimed],
            }
            print(json.dumps(held), flush=True)
            # The claim has committed its leases; dying here leaves them held by nobody.
            os.kill(os.getpid(), signal.SIGKILL)
        return claimed


async def main(url: str, lease_seconds: float) -> None:
    kind = CrashAfterClaim if os.environ.get("ORCH_TEST_CRASH_AFTER_CLAIM") else SqlStore
    store = kind(url)
    await store.open()
    clock = SystemClock()
    pipeline = Pipeline(store, load_playbooks(REPO / "playbooks"), clock)
    service = TimerService(
        store, pipeline, clock, lease=dt.timedelta(seconds=lease_seconds), batch=BATCH
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    start_at = float(os.environ.get("ORCH_TEST_START_AT", "0"))
    # Replicas given one start time make their first claims together, as after a deploy.
    await asyncio.sleep(max(0.0, start_at - clock.now().timestamp()))
    try:
        await service.run_forever(stop, poll=POLL)
    finally:
        await store.close()


if __name__ == "__main__":
    lease = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    asyncio.run(main(sys.argv[1], lease))
