"""The benchmarks' databases: a PostgreSQL test database emptied before a run."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from orchestrator.store.engine import sync_url


def reset_postgres(url: str) -> None:
    """Drops everything in the database so the store migrates a fresh schema (test databases
    only: the reset is destructive). SQLite URLs are left alone."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    if "test" not in (parsed.database or ""):
        raise SystemExit(f"--reset refuses {parsed.database!r}: name a test database")
    engine = sa.create_engine(sync_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
