"""Scale-out, demonstrated: three `orchestrator run` processes on one PostgreSQL database and
one Kafka topic of six partitions, against the fake Slack and PagerDuty over real HTTP. A storm
of alerts across many services comes in while one process is killed (SIGKILL) and started
again; afterwards every alert has one disposition, every incident one channel and one PagerDuty
incident, and every escalation timer fired once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from fakes.pagerduty import FakePagerDuty
from fakes.server import serve
from fakes.slack import BOT_TOKEN, FakeSlack

from orchestrator.store.sql import SqlStore
from orchestrator.timeline import Kind
from orchestrator.timers import TimerStatus

REPO = Path(__file__).resolve().parents[2]
ROUTING_KEY = "R0UTINGKEYDATA000000000000000001"
SERVICES = 36
WAIT = 90.0
PLAYBOOK = """\
name: storm-db
owner: team-data
match: ['alertname="PostgresDown"', 'env="prod"']
severity: {from_label: severity, map: {critical: SEV1}, default: SEV2}
group_by: [service]
title: "{{ labels.service }}: database down"
on_trigger:
  - pagerduty.trigger: {service: data-oncall, urgency: high}
  - slack.open_channel: {name: "inc-{{ incident.number }}-{{ labels.service }}"}
escalation:
  levels:
    - after: 3s
      do:
        - slack.post: {text: "#{{ incident.number }} still unacknowledged"}
"""


def alert(service: str, *, status: str = "firing") -> bytes:
    return json.dumps(
        {
            "labels": {
                "alertname": "PostgresDown",
                "env": "prod",
                "service": service,
                "severity": "critical",
            },
            "status": status,
            "starts_at": "2026-03-02T18:30:00+00:00",
        }
    ).encode()


class Replicas:
    """`orchestrator run` processes, each logging to its own file."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.running: dict[int, asyncio.subprocess.Process] = {}
        self.starts = 0

    async def start(self, index: int) -> None:
        self.starts += 1
        with (self.folder / f"replica-{index}-{self.starts}.log").open("wb") as log:
            # The child has its own copy of the descriptor: ours can close at once.
            self.running[index] = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "orchestrator",
                "run",
                env=self.env,
                stdout=log,
                stderr=log,
                cwd=REPO,
            )

    def kill(self, index: int) -> None:
        self.running[index].send_signal(signal.SIGKILL)

    async def stop_all(self) -> None:
        for process in self.running.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running.values():
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.folder.glob("replica-*.log")))


async def eventually(check: Callable[[], Awaitable[bool]], what: str, replicas: Replicas) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while not await check():  # noqa: ASYNC110 - the store has no change feed
                await asyncio.sleep(0.5)
    except TimeoutError:
        raise AssertionError(f"{what}\n{replicas.logs()}") from None


@pytest.fixture
async def world(
    tmp_path: Path, store_url: str, kafka_bootstrap: str, kafka_topic: str
) -> AsyncIterator[tuple[Replicas, FakeSlack, FakePagerDuty, SqlStore, str]]:
    url = store_url  # a fresh PostgreSQL schema (the test runs on that backend only)
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "10-storm.yaml").write_text(PLAYBOOK)
    pagerduty = FakePagerDuty(routing_keys={ROUTING_KEY: "Data on-call"})
    slack = FakeSlack()
    tls = tmp_path / "tls"
    tls.mkdir()
    with slack.running() as slack_served, serve(pagerduty.app, tls_dir=tls) as pd_served:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ORCH_")},
            "ORCH_DATABASE_URL": url,
            "ORCH_PLAYBOOKS_DIR": str(playbooks),
            "ORCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "ORCH_KAFKA_TOPICS": kafka_topic,
            "ORCH_KAFKA_GROUP": f"scale-{kafka_topic}",
            "ORCH_HTTP_PORT": "0",
            "ORCH_DRY_RUN": "false",
            "ORCH_SLACK_BOT_TOKEN": BOT_TOKEN,
            "ORCH_SLACK_API_URL": f"{slack_served.url}/api/",
            "ORCH_PAGERDUTY_SERVICES": json.dumps({"data-oncall": {"routing_key": ROUTING_KEY}}),
            "ORCH_PAGERDUTY_EVENTS_URL": pd_served.url,
            "ORCH_VENDOR_CA_FILE": str(pd_served.ca_file),
            # A killed replica's claims come back to the others after this, not minutes.
            "ORCH_DISPATCH_LEASE_SECONDS": "5",
            "ORCH_TIMER_LEASE_SECONDS": "5",
        }
        replicas = Replicas(env, tmp_path)
        store = SqlStore(url)
        await store.open()
        try:
            yield replicas, slack, pagerduty, store, kafka_topic
        finally:
            await replicas.stop_all()
            await store.close()


async def produce(bootstrap: str, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in values:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


@pytest.mark.postgres
@pytest.mark.backends("postgres")  # SKIP LOCKED replicas on one database
async def test_three_replicas_one_killed_midway_lose_and_double_nothing(
    world: tuple[Replicas, FakeSlack, FakePagerDuty, SqlStore, str], kafka_bootstrap: str
) -> None:
    replicas, slack, pagerduty, store, topic = world
    for index in range(3):
        await replicas.start(index)
    services = [f"db-{n:02d}" for n in range(SERVICES)]
    # Each service's alert three times (a storm re-sends), keyed by service as the intake keys;
    # the first half of the services before the kill, the second half after it.
    storm = [(s.encode(), alert(s)) for s in services for _ in range(3)]
    half = len(storm) // 2
    await produce(kafka_bootstrap, topic, storm[:half])

    async def some_incidents() -> bool:
        return len(await store.list_incidents(limit=1000)) >= SERVICES // 6

    await eventually(some_incidents, "the first incidents opened", replicas)
    replicas.kill(0)  # mid-storm: whatever it held (batches, deliveries, timers) is theirs now
    await produce(kafka_bootstrap, topic, storm[half:])
    await replicas.start(0)

    async def settled() -> bool:
        incidents = await store.list_incidents(limit=1000)
        timers = await store.list_timers()
        actions = await store.list_actions()
        return (
            len(incidents) == SERVICES
            and len(await store.list_alerts()) == SERVICES
            and len(timers) == SERVICES
            and all(t.status is TimerStatus.FIRED for t in timers)
            and all(item.status.value == "delivered" for item in actions)
        )

    await eventually(
        settled, "every alert recorded, every timer fired, every action sent", replicas
    )

    # One disposition per alert: the storm's resends are duplicates of the first.
    alerts = await store.list_alerts()
    assert sorted(a.labels["service"] for a in alerts) == services
    assert {a.disposition.value for a in alerts} == {"opened"}
    incidents = await store.list_incidents(limit=1000)
    assert sorted(i.service for i in incidents) == services
    # One channel and one PagerDuty incident each.
    channels = [c.name for c in slack.channels.values() if c.name.startswith("inc-")]
    assert len(channels) == SERVICES
    assert sorted(name.split("-", 2)[2] for name in channels) == services
    assert pagerduty.incidents_created == SERVICES
    assert len(pagerduty.incidents) == SERVICES
    # Each escalation fired once: one timer.fired entry per timer, one post per channel.
    for incident in incidents:
        fired = [e for e in await store.timeline(incident.number) if e.kind is Kind.TIMER_FIRED]
        assert len(fired) == 1, incident.number
    nudges = [
        m
        for c in slack.channels.values()
        for m in slack.messages[c.id]
        if "still unacknowledged" in m.text
    ]
    assert len(nudges) == SERVICES
    assert slack.violations == []
    assert pagerduty.violations == []
