"""The Kafka intake against a real broker: formats, dead letters, crashes and rebalances."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from orchestrator.clock import SystemClock
from orchestrator.ingest.kafka import (
    DLQ_ERROR,
    DLQ_LETTER,
    DLQ_OFFSET,
    DLQ_PARTITION,
    DLQ_TOPIC,
    KafkaConfig,
    KafkaIntake,
)
from orchestrator.ingest.normalize import normalize
from orchestrator.instruments import Instruments
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.loader import load_playbooks
from orchestrator.report.chains import verify_incident
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
STREAM = [
    line for line in (EXAMPLES / "alertmanager-stream.jsonl").read_bytes().splitlines() if line
]
WAIT = 30.0


def group() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


async def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    *,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key or b"k", headers=headers)
    finally:
        await producer.stop()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not await check():  # noqa: ASYNC110 - the store and broker have no change feed
            await asyncio.sleep(0.2)
    assert await check(), what


async def alert_count(store: SqlStore) -> int:
    return len(await store.list_alerts())


async def committed_total(bootstrap: str, topic: str, group_id: str) -> int:
    """The group's committed offsets on `topic`, summed: how many messages it has acked."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


def pipeline_for(store: SqlStore) -> Pipeline:
    return Pipeline(store, load_playbooks(REPO / "playbooks"), SystemClock())


async def run_intake(store: SqlStore, bootstrap: str, topic: str, group_id: str) -> KafkaIntake:
    intake = KafkaIntake(
        pipeline_for(store), KafkaConfig(bootstrap, {topic: None}, group_id=group_id)
    )
    await intake.start()
    return intake


async def test_every_format_is_consumed_and_offsets_committed_after_the_store(
    store: SqlStore, kafka_bootstrap: str, kafka_topic: str
) -> None:
    values = [
        STREAM[3],
        (EXAMPLES / "grafana-alert.json").read_bytes(),
        (EXAMPLES / "cloudevent-alert.json").read_bytes(),
        (EXAMPLES / "native-alert.json").read_bytes(),
    ]
    await produce(kafka_bootstrap, kafka_topic, values)
    group_id = group()
    intake = await run_intake(store, kafka_bootstrap, kafka_topic, group_id)
    try:
        await eventually(lambda: _has_sources(store, 4), "an alert from every format")
        await eventually(
            lambda: _equals(committed_total(kafka_bootstrap, kafka_topic, group_id), 4),
            "offsets committed for all four messages",
        )
    finally:
        await intake.stop()
    sources = {record.source for record in await store.list_alerts()}
    assert sources == {"alertmanager", "grafana", "cloudevents", "native"}
    assert await store.list_dead_letters() == []


async def _has_sources(store: SqlStore, count: int) -> bool:
    return len({record.source for record in await store.list_alerts()}) >= count


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_poison_messages_go_to_the_dlq_and_the_partition_moves_on(
    store: SqlStore, kafka_bootstrap: str, kafka_topic: str
) -> None:
    poison = [b"not json at all", b'{"version": "4", "alerts": []}', b"\xff\xfe\x00"]
    good = STREAM[:6]
    await produce(
        kafka_bootstrap,
        kafka_topic,
        [poison[0], *good[:3], poison[1], poison[2], *good[3:]],
        headers=[("traceparent", b"00-abc-def-01")],
    )
    intake = await run_intake(store, kafka_bootstrap, kafka_topic, group())
    try:
        await eventually(lambda: _letters(store, 3), "three dead letters")
        expected_alerts = await _expected_alerts(good)
        await eventually(lambda: _equals(alert_count(store), expected_alerts), "good alerts")
    finally:
        await intake.stop()

    letters = sorted(await store.list_dead_letters(), key=lambda letter: letter.id or 0)
    assert [letter.raw for letter in letters] == poison
    assert all(letter.origin.startswith(f"kafka:{kafka_topic}/") for letter in letters)

    dlq = AIOKafkaConsumer(
        f"{kafka_topic}.dlq",
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=group(),
    )
    await dlq.start()
    try:
        received: list[Any] = []
        async with asyncio.timeout(WAIT):
            while len(received) < 3:
                batch = await dlq.getmany(timeout_ms=500)
                received += [record for records in batch.values() for record in records]
    finally:
        await dlq.stop()
    assert sorted(record.value for record in received) == sorted(poison)
    for record in received:
        headers = {name: value.decode() for name, value in record.headers}
        assert headers[DLQ_TOPIC] == kafka_topic
        assert int(headers[DLQ_PARTITION]) >= 0
        assert int(headers[DLQ_OFFSET]) >= 0
        assert headers[DLQ_ERROR]
        assert int(headers[DLQ_LETTER]) in {letter.id for letter in letters}
        assert headers["traceparent"] == "00-abc-def-01"
        assert record.key == b"k"


async def _letters(store: SqlStore, count: int) -> bool:
    return len(await store.list_dead_letters()) >= count


async def _expected_alerts(values: list[bytes]) -> int:
    """Distinct alerts in these payloads, as a store would record them (resends count once)."""
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return len({alert.id for raw in values for alert in normalize(raw, received_at=now).alerts})


async def test_a_crash_between_the_store_and_the_offset_commit_doubles_nothing(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    group_id = group()
    await produce(kafka_bootstrap, kafka_topic, STREAM)
    worker = [
        sys.executable,
        str(REPO / "tests/integration/kafka_worker.py"),
        kafka_bootstrap,
        kafka_topic,
        group_id,
        url,
    ]

    crashing = await asyncio.create_subprocess_exec(
        *worker,
        env={**os.environ, "ORCH_TEST_CRASH_AFTER_STORE": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await crashing.communicate()
    assert crashing.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert b"stored" in out

    store = SqlStore(url)
    await store.open()
    try:
        after_crash = await _snapshot(store)
        assert after_crash["alerts"] > 0  # the batch was stored before the kill...
        assert await committed_total(kafka_bootstrap, kafka_topic, group_id) == 0  # ...not acked

        process = await asyncio.create_subprocess_exec(
            *worker, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            expected = await _expected_alerts(STREAM)
            await eventually(lambda: _equals(alert_count(store), expected), "all alerts")
            await eventually(
                lambda: _equals(
                    committed_total(kafka_bootstrap, kafka_topic, group_id), len(STREAM)
                ),
                "all offsets committed after the restart",
            )
        finally:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(60):
                await process.communicate()
        assert process.returncode == 0
        final = await _snapshot(store)
        reference = await _reference_snapshot(tmp_path, STREAM)
        assert final == reference
        for incident in await store.list_incidents():
            assert verify_incident(incident.number, await store.timeline(incident.number)) == []
    finally:
        await store.close()


async def _snapshot(store: SqlStore) -> dict[str, Any]:
    incidents = await store.list_incidents()
    alert_entries = []
    for incident in incidents:
        entries = await store.timeline(incident.number)
        alert_entries.append(sum(1 for e in entries if e.kind.value.startswith("alert.")))
    return {
        "alerts": len(await store.list_alerts()),
        "incidents": len(incidents),
        "actions": len(await store.list_actions()),
        "alert_entries": sorted(alert_entries),
    }


async def _reference_snapshot(tmp_path: Path, values: list[bytes]) -> dict[str, Any]:
    """The same messages processed once, without Kafka: what a crash-free run records."""
    reference = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'reference.db'}")
    await reference.open()
    try:
        pipeline = pipeline_for(reference)
        for index, value in enumerate(values):
            await pipeline.ingest_bytes(value, f"reference:{index}")
        return await _snapshot(reference)
    finally:
        await reference.close()


async def test_two_consumers_and_a_rebalance_lose_and_double_nothing(
    store: SqlStore, kafka_bootstrap: str, kafka_topic: str
) -> None:
    group_id = group()
    first = await run_intake(store, kafka_bootstrap, kafka_topic, group_id)
    second: KafkaIntake | None = None
    try:
        half = len(STREAM) // 2
        await _produce_keyed(kafka_bootstrap, kafka_topic, STREAM[:half])
        second = await run_intake(store, kafka_bootstrap, kafka_topic, group_id)  # rebalance
        await _produce_keyed(kafka_bootstrap, kafka_topic, STREAM[half:])
        expected = await _expected_alerts(STREAM)
        await eventually(lambda: _equals(alert_count(store), expected), "every alert once")
        await eventually(
            lambda: _equals(committed_total(kafka_bootstrap, kafka_topic, group_id), len(STREAM)),
            "every offset committed",
        )
    finally:
        await first.stop()
        if second is not None:
            await second.stop()
    numbers = sorted(incident.number for incident in await store.list_incidents())
    assert numbers == list(range(1, len(numbers) + 1))  # gap-free, none doubled
    ids = [record.alert_id for record in await store.list_alerts()]
    assert len(ids) == len(set(ids))


async def _produce_keyed(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Keyed by Alertmanager group, as the HTTP intake and a well-behaved bridge do."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            key = json.loads(value).get("groupKey", "").encode() or None
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


class _HeldPipeline(Pipeline):
    """Holds its first batch inside `ingest_many` until released: the window in which a second
    consumer joins the group and takes partitions away from the batch in flight."""

    def __init__(self, store: SqlStore) -> None:
        super().__init__(store, load_playbooks(REPO / "playbooks"), SystemClock())
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def ingest_many(self, payloads: Any) -> Any:
        if not self.holding.is_set():
            self.holding.set()
            await self.release.wait()
        return await super().ingest_many(payloads)


async def test_a_rebalance_in_the_middle_of_a_batch_loses_and_doubles_nothing(
    tmp_path: Path, store: SqlStore, kafka_bootstrap: str, kafka_topic: str
) -> None:
    group_id = group()
    await _produce_keyed(kafka_bootstrap, kafka_topic, STREAM)
    held = _HeldPipeline(store)
    first = KafkaIntake(held, KafkaConfig(kafka_bootstrap, {kafka_topic: None}, group_id=group_id))
    await first.start()
    second: KafkaIntake | None = None
    try:
        async with asyncio.timeout(WAIT):
            await held.holding.wait()  # the first consumer owns all partitions, mid-batch
        second = await run_intake(store, kafka_bootstrap, kafka_topic, group_id)
        await asyncio.sleep(3.0)  # the group rebalances while the first batch is held
        held.release.set()  # the batch is stored; its partitions may belong to `second` now
        expected = await _expected_alerts(STREAM)
        await eventually(lambda: _equals(alert_count(store), expected), "every alert once")
        await eventually(
            lambda: _equals(committed_total(kafka_bootstrap, kafka_topic, group_id), len(STREAM)),
            "every offset committed",
        )
    finally:
        await first.stop()
        if second is not None:
            await second.stop()
    # Redelivered records of the held batch were duplicates: the store holds what one clean
    # pass records, no more.
    assert await _snapshot(store) == await _reference_snapshot(tmp_path, STREAM)
    numbers = sorted(incident.number for incident in await store.list_incidents())
    assert numbers == list(range(1, len(numbers) + 1))
    for incident in await store.list_incidents():
        assert verify_incident(incident.number, await store.timeline(incident.number)) == []


async def test_the_consumer_s_lag_is_measured_per_partition(
    store: SqlStore, kafka_bootstrap: str, kafka_topic: str
) -> None:
    from otel import Metrics  # noqa: PLC0415 - the tests' own reader of instruments

    metrics = Metrics()
    values = [STREAM[i % len(STREAM)] for i in range(30)]
    await produce(kafka_bootstrap, kafka_topic, values)
    pipeline = Pipeline(
        store,
        load_playbooks(REPO / "playbooks"),
        SystemClock(),
        instruments=Instruments.of(metrics.meter),
    )
    config = KafkaConfig(kafka_bootstrap, {kafka_topic: None}, group_id=group(), max_records=4)
    intake = KafkaIntake(pipeline, config)
    await intake.start()
    try:
        await eventually(
            lambda: _equals(committed_total(kafka_bootstrap, kafka_topic, config.group_id), 30),
            "all thirty messages consumed",
        )
    finally:
        await intake.stop()
    points = metrics.points("orchestrator.kafka.consumer_lag")
    assert points, "no lag was recorded"
    assert {point.attributes["topic"] for point in points} == {kafka_topic}
    # Caught up: nothing waits after the last batch of any partition it read.
    assert all(point.value == 0 for point in points)


async def test_readiness_asks_the_broker(
    store: SqlStore, kafka_bootstrap: str, kafka_topic: str
) -> None:
    intake = await run_intake(store, kafka_bootstrap, kafka_topic, group())
    try:
        assert await intake.reachable() is True
    finally:
        await intake.stop()
    assert await intake.reachable(0.5) is False  # stopped: not ready to consume
    nowhere = KafkaIntake(pipeline_for(store), KafkaConfig("127.0.0.1:1", {kafka_topic: None}))
    assert await nowhere.reachable(0.5) is False  # never connected
