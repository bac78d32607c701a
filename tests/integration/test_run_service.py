"""`orchestrator run` as a real process: consumes Kafka, serves HTTP, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from samples import free_port

from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[2]
STREAM = [
    line
    for line in (REPO / "examples" / "alertmanager-stream.jsonl").read_bytes().splitlines()
    if line
]


async def test_run_consumes_then_stops_gracefully_on_sigterm(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for line in STREAM[:10]:
            await producer.send_and_wait(kafka_topic, line, key=b"group")
    finally:
        await producer.stop()

    database = tmp_path / "run.db"
    port = free_port()
    group = f"run-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "ORCH_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "ORCH_PLAYBOOKS_DIR": str(REPO / "playbooks"),
        "ORCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "ORCH_KAFKA_TOPICS": kafka_topic,
        "ORCH_KAFKA_GROUP": group,
        "ORCH_KAFKA_EVENTS_TOPIC": f"{kafka_topic}.events",
        "ORCH_HTTP_PORT": str(port),
        "COLUMNS": "200",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        "run",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            async with asyncio.timeout(60):
                while True:
                    try:
                        ready = await client.get("/readyz")
                        if ready.status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.2)
            assert ready.json()["checks"]["kafka"] is True
            # A webhook through the HTTP intake goes onto the topic, and back in through the
            # consumer, like the alerts produced directly.
            webhook = await client.post(
                "/api/v1/alerts/grafana",
                content=(REPO / "examples" / "grafana-alert.json").read_bytes(),
                headers={"content-type": "application/json"},
            )
            assert webhook.status_code == 202, webhook.text
        store = SqlStore(f"sqlite+aiosqlite:///{database}")
        await store.open()
        try:
            async with asyncio.timeout(60):
                while not {"grafana", "alertmanager"} <= {  # noqa: ASYNC110 - no change feed
                    record.source for record in await store.list_alerts()
                }:
                    await asyncio.sleep(0.2)
            assert await store.list_incidents()
        finally:
            await store.close()
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            output, _ = await process.communicate()
    text = output.decode()
    assert process.returncode == 0, text[-3000:]
    assert "stopped cleanly" in text

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    # The ten produced directly and the one the HTTP intake published.
    assert sum(meta.offset for tp, meta in offsets.items() if tp.topic == kafka_topic) == 11
