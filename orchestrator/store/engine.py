"""Opens the engine for a store URL and migrates its schema: half of SqlStore.open().

Users give async-style URLs (`sqlite+aiosqlite://`, `postgresql+asyncpg://`) or plain ones; the
store runs its transactions synchronously in a worker thread, so each is mapped to the matching
synchronous driver (pysqlite, psycopg). See docs/adr/0004.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")

# Execution option a connection carries when it is about to write (see _begin below).
WRITE_OPTION = "orchestrator_write"

BUSY_TIMEOUT_MS = 30_000


SYNC_DRIVERS = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg"}
POSTGRES_POOL_SIZE = 8


# Sorted keys, as in the timeline's canonical form: a timeline row's stored JSON is then exactly
# the text its hash covers, and verifying the store needs no parsing (report/chains.py).
_JSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _json_text(value: Any) -> str:
    # JSON columns are written and read on every row the pipeline touches; orjson does both in
    # a fraction of json's time. Text, not bytes: SQLite would store bytes as a BLOB.
    # Datetimes and dataclasses are refused, as json refuses them.
    return orjson.dumps(value, option=_JSON_OPTIONS).decode()


JSON_CODEC: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def is_memory_sqlite(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def sync_url(url: str) -> URL:
    """The same database, through the synchronous driver the store's worker thread uses."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in SYNC_DRIVERS:
        raise ValueError(
            f"unsupported store URL {parsed.render_as_string()!r}: use sqlite or postgresql"
        )
    return parsed.set(drivername=SYNC_DRIVERS[backend])


def create_engine(url: str) -> Engine:
    target = sync_url(url)
    if target.get_backend_name() == "sqlite":
        return _sqlite_engine(target, memory=is_memory_sqlite(url))
    return sa.create_engine(
        target,
        isolation_level="READ COMMITTED",
        pool_pre_ping=True,
        pool_size=POSTGRES_POOL_SIZE,
        # Transactions held open by async callers take connections beyond the workers' own.
        max_overflow=2 * POSTGRES_POOL_SIZE,
        **JSON_CODEC,
    )


def _sqlite_engine(url: URL, *, memory: bool) -> Engine:
    if not memory and url.database:
        # The default store is a file under var/: a first run creates the folder it lives in.
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # One connection for :memory:, or every checkout would see its own empty database. The
    # store's single worker thread is the only user, but the connection is created elsewhere.
    extra: dict[str, Any] = {"poolclass": StaticPool} if memory else {}
    engine = sa.create_engine(url, connect_args={"check_same_thread": False}, **JSON_CODEC, **extra)

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

    event.listen(engine, "connect", _connect)
    event.listen(engine, "begin", _begin)
    return engine


def head_revision() -> str:
    """The newest migration's revision: each file in versions/ is named after its revision
    ("0006_timestamp_folds.py" is "0006"), in order (a test holds this to alembic's own head)."""
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("0*.py"))


def is_current(connection: Connection) -> bool:
    """The schema is at the newest migration already: the usual case, checked without
    importing alembic, which costs every short command a tenth of a second."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return False
    found = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
    return list(found) == [head_revision()]


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration for the store's migrations, run on `connection` (see env.py)."""
    from alembic.config import Config  # noqa: PLC0415 - see is_current

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection) -> None:
    """Brings the schema to the newest migration on `connection`, inside its transaction."""
    from alembic import command  # noqa: PLC0415 - see is_current

    command.upgrade(alembic_config(connection), "head")


def migrate(engine: Engine) -> None:
    with engine.connect() as conn:
        writer = conn.execution_options(**{WRITE_OPTION: True})
        with writer.begin():
            if not is_current(writer):
                upgrade(writer)


def schema_revision(url: str) -> str | None:
    """The migration a database is at, read without migrating it (None: not set up yet), for
    `orchestrator config check`. Raises SQLAlchemy's OperationalError when it cannot connect.
    A SQLite file that does not exist yet is not created (the first run creates it)."""
    parsed = sync_url(url)
    on_disk = parsed.get_backend_name() == "sqlite" and not is_memory_sqlite(url)
    if on_disk and not Path(parsed.database or "").exists():
        return None
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
