"""Shared test fixtures: the store backends every contract test runs against, the Kafka topic,
and a clean proxy environment."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy.pool import NullPool

from orchestrator.store.engine import sync_url
from orchestrator.store.sql import SqlStore

POSTGRES_URL_ENV = "ORCH_TEST_POSTGRES_URL"
REQUIRE_SERVICES_ENV = "ORCH_REQUIRE_SERVICES"

STORE_BACKENDS = [
    "sqlite-file",
    "sqlite-memory",
    pytest.param("postgres", marks=pytest.mark.postgres),
]


def postgres_url() -> str:
    """The test server's URL; skips the test without one, or fails it when CI requires one."""
    url = os.environ.get(POSTGRES_URL_ENV, "")
    if url:
        return url
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(
            f"{POSTGRES_URL_ENV} is not set but {REQUIRE_SERVICES_ENV}=1 requires PostgreSQL"
        )
    pytest.skip(f"set {POSTGRES_URL_ENV} or run deploy/postgres/start-test-postgres.sh")


async def reset_postgres(url: str) -> None:
    """Drops everything in the test database so each test migrates a fresh schema."""
    database = sa.make_url(url).database or ""
    if "test" not in database:
        # The reset is destructive: refuse anything that does not look like a test database.
        pytest.fail(f"{POSTGRES_URL_ENV} must name a test database (got {database!r})")
    engine = sa.create_engine(sync_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(params=STORE_BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL with nothing in it yet, for each backend."""
    backend: str = request.param
    if backend == "sqlite-file":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    if backend == "sqlite-memory":
        return "sqlite+aiosqlite:///:memory:"
    url = postgres_url()
    await reset_postgres(url)
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    """An open, migrated, empty store; closed after the test."""
    opened = SqlStore(store_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.backends(...)` limits a store test to the backends it applies to; the
    others are deselected rather than skipped, so a skip always means something is missing."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("backends")
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("store_url") if callspec is not None else None
        if marker is not None and backend is not None and backend not in marker.args:
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


KAFKA_BOOTSTRAP_ENV = "ORCH_TEST_KAFKA_BOOTSTRAP"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The test broker's address; skips without one, or fails when CI requires one."""
    bootstrap = os.environ.get(KAFKA_BOOTSTRAP_ENV, "")
    if bootstrap:
        return bootstrap
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(f"{KAFKA_BOOTSTRAP_ENV} is not set but {REQUIRE_SERVICES_ENV}=1 requires Kafka")
    pytest.skip(f"set {KAFKA_BOOTSTRAP_ENV} or run deploy/kafka/kafka.sh start")


@pytest.fixture
async def kafka_topic(kafka_bootstrap: str) -> AsyncIterator[str]:
    """A fresh topic with 6 partitions, deleted afterwards (with its dead-letter topic)."""
    name = f"alerts-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=6, replication_factor=1)])
        yield name
        existing = set(await admin.list_topics())
        await admin.delete_topics([t for t in (name, f"{name}.dlq") if t in existing])
    finally:
        await admin.close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk sends every request through a proxy named in the environment and ignores
    NO_PROXY, which would send the tests' loopback calls to the fakes away."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
