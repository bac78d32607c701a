"""Opens the async engine for a store URL and migrates its schema: half of SqlStore.open()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

MIGRATIONS = Path(__file__).with_name("migrations")

# Execution option a connection carries when it is about to write (see _begin below).
WRITE_OPTION = "orchestrator_write"

BUSY_TIMEOUT_MS = 30_000


def is_memory_sqlite(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, memory=is_memory_sqlite(url))
    if backend == "postgresql":
        return create_async_engine(url, isolation_level="READ COMMITTED", pool_pre_ping=True)
    raise ValueError(
        f"unsupported store URL {parsed.render_as_string()!r}: use sqlite or postgresql"
    )


def _sqlite_engine(url: str, *, memory: bool) -> AsyncEngine:
    # One connection for :memory:, or every checkout would see its own empty database.
    extra: dict[str, Any] = {"poolclass": StaticPool} if memory else {}
    engine = create_async_engine(url, **extra)

    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling starts transactions lazily (too late to take the
        # write lock up front) and not at all for reads; _begin emits BEGIN itself instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    def _begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock at BEGIN, so another process's writer makes us wait
        # (busy_timeout) instead of failing with "database is locked" halfway through.
        writing = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    event.listen(engine.sync_engine, "connect", _connect)
    event.listen(engine.sync_engine, "begin", _begin)
    return engine


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration for the store's migrations, run on `connection` (see env.py)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection) -> None:
    """Brings the schema to the newest migration on `connection`, inside its transaction."""
    command.upgrade(alembic_config(connection), "head")


async def migrate(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execution_options(**{WRITE_OPTION: True})
        async with conn.begin():
            await conn.run_sync(upgrade)
