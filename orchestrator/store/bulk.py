"""PostgreSQL's fast paths for a batch's bulk writes (docs/adr/0005).

A batch's timeline entries are most of what it writes: sent as one COPY stream they cost the
client a third of what SQLAlchemy's parameter binding row by row does, and the server less too.
Its incident updates go to psycopg directly, as tuples, for the same reason. SQLite has no COPY,
and its executemany is already a loop in C, so it keeps the ordinary statements. Reading
millions of rows of plain text and integers (verifying the store), the driver's own tuples
likewise cost less than SQLAlchemy's rows (`driver_rows`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.types.json import Json
from sqlalchemy.engine import Connection

from orchestrator.store.schema import UtcDateTime


def copy_rows(conn: Connection, table: sa.Table, rows: Iterable[Mapping[str, Any]]) -> None:
    """Appends `rows` (column name -> value, as for an INSERT) to `table` in this transaction."""
    columns = [column.name for column in table.columns]
    convert = [_converter(column.type) for column in table.columns]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), _names(columns)
    )
    with _psycopg(conn).cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([to(row[name]) for name, to in zip(columns, convert, strict=True)])


def insert_new_rows(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """`INSERT ... ON CONFLICT (key) DO NOTHING` once per row, pipelined: rows whose key is
    stored already (a redelivered decision's actions and timers) are left as they are."""
    if not rows:
        return
    types = {column.name: column.type for column in table.columns}
    names = list(rows[0])
    convert = [_converter(types[name]) for name in names]
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (key) DO NOTHING").format(
        sql.Identifier(table.name),
        _names(names),
        sql.SQL(", ").join([sql.Placeholder()] * len(names)),
    )
    values = [[to(row[name]) for name, to in zip(names, convert, strict=True)] for row in rows]
    with _psycopg(conn).cursor() as cursor:
        cursor.executemany(statement, values)


def update_rows(
    conn: Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    where: tuple[str, ...],
) -> int:
    """`UPDATE table SET <every other key> WHERE <where keys> = ...` once per row, pipelined;
    returns how many rows matched in all. Each row has the same keys: the new values, and the
    `where` ones (named `where_<column>`)."""
    if not rows:
        return 0
    types = {column.name: column.type for column in table.columns}
    setting = [name for name in rows[0] if not name.startswith("where_")]
    convert = [_converter(types[name]) for name in setting]
    matched = [f"where_{name}" for name in where]
    statement = sql.SQL("UPDATE {} SET {} WHERE {}").format(
        sql.Identifier(table.name),
        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in setting),
        sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in where),
    )
    values = [
        [to(row[name]) for name, to in zip(setting, convert, strict=True)]
        + [row[name] for name in matched]
        for row in rows
    ]
    with _psycopg(conn).cursor() as cursor:
        cursor.executemany(statement, values)
        return cursor.rowcount


def _names(names: list[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, names))


def _psycopg(conn: Connection) -> psycopg.Connection[Any]:
    raw = conn.connection.dbapi_connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError(f"this needs a psycopg connection, not {type(raw).__name__}")
    return raw


def _converter(column_type: sa.types.TypeEngine[Any]) -> Any:
    if isinstance(column_type, sa.JSON):
        return _json
    if isinstance(column_type, UtcDateTime):
        return _instant
    return _same


def _same(value: Any) -> Any:
    return value


def _json(value: Any) -> Json | None:
    return None if value is None else Json(value)


def _instant(value: dt.datetime | None) -> dt.datetime | None:
    # The same refusal as UtcDateTime's: a naive time would be read in the session's zone.
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"naive datetime {value!r}: the store only takes timezone-aware times")
    return value


def driver_rows(conn: Connection, query: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """The rows as the database driver's own tuples: SQLAlchemy's row objects cost more than
    reading them did, for millions of rows with no type to convert (all text and integers).
    The statement's only parameters are integers and constants, so they are written in."""
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()
