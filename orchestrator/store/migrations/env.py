"""Alembic environment: runs the store's migrations on the connection SqlStore.open() hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from orchestrator.store.schema import metadata

# Any fixed number: replicas starting together take turns migrating instead of racing.
_PG_MIGRATION_LOCK = 0x6F726368


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        context.run_migrations()


connection = context.config.attributes.get("connection")
if context.is_offline_mode() or not isinstance(connection, Connection):
    raise RuntimeError(
        "the store's migrations run through SqlStore.open(), which passes a live connection in "
        "config.attributes['connection']"
    )
_run(connection)
