"""Kafka intake: consumes alert topics in batches, records each batch in one store transaction,
dead-letters unreadable messages to `<topic>.dlq`, and commits offsets only after the store has.

Delivery is at least once. A batch's offsets are committed after its transaction commits (ack);
if anything fails before that, the consumer seeks back to the batch's first records (nack) and
the batch is delivered again. Redelivery is harmless: alert ids are stable, so a replayed alert
is a duplicate and records nothing new. Poison messages cannot block a partition: they never
raise, they become dead letters (a store row and a copy of the exact bytes on the DLQ topic).

Ordering: Kafka keeps order within a partition, and batches are processed one after another,
so producers that key messages by alert group (Alertmanager's groupKey, or the fingerprint)
get each incident's alerts processed in order. The HTTP intake keys its messages that way.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.message import StreamMessage

from orchestrator.actions import Action, ActionResult
from orchestrator.ingest.alert import SourceFormat
from orchestrator.ingest.normalize import Normalized, normalize
from orchestrator.lifecycle import PUBLISH_EVENT
from orchestrator.pipeline import IngestReport, Payload, Pipeline

log = logging.getLogger(__name__)

DLQ_ERROR = "x-dlq-error"
DLQ_TOPIC = "x-dlq-source-topic"
DLQ_PARTITION = "x-dlq-source-partition"
DLQ_OFFSET = "x-dlq-source-offset"
DLQ_LETTER = "x-dlq-dead-letter-id"
FORMAT_HEADER = "x-alert-format"


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap: str
    topics: dict[str, SourceFormat | None] = field(default_factory=lambda: {"alerts": None})
    group_id: str = "incident-orchestrator"
    dlq_suffix: str = ".dlq"
    max_records: int = 500
    batch_timeout_ms: int = 10  # under load batches fill at once; idle, latency stays low
    client_id: str = "incident-orchestrator"

    @property
    def intake_topic(self) -> str:
        """Where the HTTP intake publishes: the first topic that auto-detects the format."""
        for topic, fmt in self.topics.items():
            if fmt is None:
                return topic
        return next(iter(self.topics))


async def _keep_raw_bytes(message: StreamMessage[Any]) -> Any:
    """The pipeline reads the bytes itself; faststream would otherwise JSON-decode each one."""
    return message.body


def _headers(record: ConsumerRecord) -> dict[str, str]:
    return {
        name: value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
        for name, value in (record.headers or ())
    }


def _origin(record: ConsumerRecord) -> str:
    return f"kafka:{record.topic}/{record.partition}@{record.offset}"


class KafkaIntake:
    def __init__(self, pipeline: Pipeline, config: KafkaConfig) -> None:
        self.pipeline = pipeline
        self.config = config
        self.broker = KafkaBroker(
            config.bootstrap,
            client_id=config.client_id,
            graceful_timeout=30.0,
            logger=log,
            # Consume spans continue the trace in a message's headers, and a webhook put on
            # the topic carries its request's: the batch's pipeline span is their child.
            middlewares=(KafkaTelemetryMiddleware(),),
        )
        self._failures = 0
        subscriber = self.broker.subscriber(
            *config.topics,
            group_id=config.group_id,
            batch=True,
            max_records=config.max_records,
            batch_timeout_ms=config.batch_timeout_ms,
            # A new consumer group starts from the oldest retained alert: skipping a backlog
            # would silently drop alerts that arrived before the first deployment.
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_keep_raw_bytes,
        )
        subscriber(self._on_batch)
        self._subscriber = subscriber

    async def start(self) -> None:
        await self.broker.start()

    async def stop(self) -> None:
        """Finishes the batch in flight (up to the graceful timeout), then closes."""
        await self.broker.stop()

    async def reachable(self, wait: float = 2.0) -> bool:
        """Whether the broker answers now (a cluster description), for /readyz."""
        try:
            return await self.broker.ping(wait)
        except Exception:  # not started, or stopping: not ready either way
            return False

    async def _on_batch(self, body: Any, message: KafkaMessage) -> None:
        del body  # the records below carry the same bytes, plus where they came from
        raw = message.raw_message
        records: Sequence[ConsumerRecord] = raw if isinstance(raw, tuple) else (raw,)
        try:
            reports = await self.pipeline.ingest_many(
                [
                    Payload(
                        record.value or b"", _origin(record), self._format(record), _headers(record)
                    )
                    for record in records
                ]
            )
            await self._publish_dead_letters(records, reports)
            self._measure_lag(records)
        except Exception:
            # The store or the broker is unavailable: wait, then let the nack rewind the batch.
            # Backing off keeps a database outage from turning into a hot loop.
            self._failures += 1
            delay = min(30.0, 0.5 * 2 ** min(self._failures, 6))
            log.exception("batch of %d failed; retrying in %.1fs", len(records), delay)
            await asyncio.sleep(delay)
            raise
        self._failures = 0

    def _measure_lag(self, records: Sequence[ConsumerRecord]) -> None:
        """How far behind each partition of the batch this consumer is, by the broker's high
        watermark as of the fetch: messages waiting after the batch's last one."""
        consumer = self._subscriber.consumer
        if consumer is None:
            return
        last: dict[tuple[str, int], int] = {}
        for record in records:
            last[(record.topic, record.partition)] = record.offset
        for (topic, partition), offset in last.items():
            highwater = consumer.highwater(TopicPartition(topic, partition))
            if highwater is not None:
                lag = max(0, highwater - offset - 1)
                attributes: dict[str, str | int] = {"topic": topic, "partition": partition}
                self.pipeline.instruments.consumer_lag.set(lag, attributes)

    def _format(self, record: ConsumerRecord) -> SourceFormat | None:
        """The topic's configured format, else the one the HTTP intake saw, else detection."""
        configured = self.config.topics.get(record.topic)
        if configured is not None:
            return configured
        hint = _headers(record).get(FORMAT_HEADER, "")
        return SourceFormat(hint) if hint in {f.value for f in SourceFormat} else None

    async def _publish_dead_letters(
        self, records: Sequence[ConsumerRecord], reports: list[IngestReport]
    ) -> None:
        for record, report in zip(records, reports, strict=True):
            if report.error is None:
                continue
            headers = {
                **_headers(record),
                DLQ_ERROR: report.error,
                DLQ_TOPIC: record.topic,
                DLQ_PARTITION: str(record.partition),
                DLQ_OFFSET: str(record.offset),
                DLQ_LETTER: str(report.dead_letter_id),
            }
            await self.broker.publish(
                record.value or b"",
                topic=f"{record.topic}{self.config.dlq_suffix}",
                key=record.key,
                headers=headers,
            )


def message_key(normalized: Normalized) -> bytes | None:
    """The partition key for a payload: its alert group, so one incident's alerts stay in order."""
    if normalized.group_key:
        return normalized.group_key.encode()
    return normalized.alerts[0].fingerprint.encode() if normalized.alerts else None


class KafkaPublishSink:
    """The HTTP intake's sink when Kafka is configured: webhooks become messages on the alerts
    topic, and the consumers (any replica) take it from there."""

    def __init__(self, broker: KafkaBroker, topic: str, clock: Any) -> None:
        self.broker = broker
        self.topic = topic
        self.clock = clock

    async def accept(
        self, raw: bytes, *, format: SourceFormat | None, origin: str, headers: dict[str, str]
    ) -> int:
        normalized = normalize(raw, received_at=self.clock.now(), format=format)
        key = message_key(normalized)
        forwarded = {"x-intake-origin": origin}
        if format is not None:
            forwarded[FORMAT_HEADER] = format.value
        await self.broker.publish(raw, topic=self.topic, key=key, headers=forwarded)
        return len(normalized.alerts)


class KafkaEventPublisher:
    """Delivers lifecycle events (orchestrator.lifecycle) to the events topic, keyed by incident
    so each incident's events stay in one partition, in order. Connects on first use, so the
    CLI's one-shot commands publish their state changes too."""

    name = "kafka-events"

    def __init__(
        self, bootstrap: str, topic: str, client_id: str = "incident-orchestrator"
    ) -> None:
        self.topic = topic
        self._broker = KafkaBroker(
            bootstrap,
            client_id=f"{client_id}-events",
            logger=log,
            middlewares=(KafkaTelemetryMiddleware(),),
        )
        self._connected = False

    @property
    def handles(self) -> frozenset[str]:
        return frozenset({PUBLISH_EVENT})

    async def deliver(self, action: Action) -> ActionResult:
        try:
            if not self._connected:
                await self._broker.connect()
                self._connected = True
            await self._broker.publish(
                json.dumps(action.params, ensure_ascii=False, sort_keys=True).encode(),
                topic=self.topic,
                key=str(action.incident_number).encode(),
                headers={"content-type": "application/json", "x-event-key": action.key},
            )
        except KafkaError as err:
            return ActionResult.failure(f"kafka: {type(err).__name__}: {err}", retryable=True)
        return ActionResult.success(f"published to {self.topic}")

    async def close(self) -> None:
        if self._connected:
            await self._broker.stop()
            self._connected = False


async def kafka_problems(bootstrap: str, topics: Sequence[str], wait: float = 5.0) -> list[str]:
    """What `orchestrator config check` finds wrong with the broker: unreachable, or a topic
    the settings name that it does not have. An empty list when all is well."""
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415 - only this check needs a bare client

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(wait * 1000),
        connections_max_idle_ms=int(wait * 2000),
    )
    try:
        async with asyncio.timeout(wait):
            await consumer.start()
            known = await consumer.topics()
    except (KafkaError, TimeoutError, OSError) as err:
        return [f"no Kafka broker answers at {bootstrap} ({type(err).__name__})"]
    finally:
        await consumer.stop()
    return [
        f"topic {topic!r} does not exist on {bootstrap}" for topic in topics if topic not in known
    ]
