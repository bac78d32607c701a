"""PostgreSQL's fast paths for a batch's bulk writes (docs/adr/0005).

A batch's timeline entries are most of what it writes: sent as one COPY stream they cost the
client a third of what SQLAlchemy's parameter binding row by row does, and the server less too.
Its incident updates go to psycopg directly, as tuples, for the same reason. SQLite has no COPY,
and its executemany is already a loop in C, so it keeps the ordinary statements. Reading
millions of rows of plain text and integers (verifying the store), the driver's own tuples
likewise cost less than SQLAlchemy's rows (`driver_rows`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
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
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), _names(columns)
    )
    with _psycopg(conn).cursor() as cursor, cursor.copy(statement) as copy:
        for values in _driver_values(table, columns, rows):
            copy.write_row(values)


def insert_new_rows(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """`INSERT ... ON CONFLICT (key) DO NOTHING` once per row, pipelined: rows whose key is
    stored already (a redelivered decision's actions and timers) are left as they are."""
    if not rows:
        return
    names = list(rows[0])
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (key) DO NOTHING").format(
        sql.Identifier(table.name),
        _names(names),
        sql.SQL(", ").join([sql.Placeholder()] * len(names)),
    )
    with _psycopg(conn).cursor() as cursor:
        cursor.executemany(statement, list(_driver_values(table, names, rows)))


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
    setting = [name for name in rows[0] if not name.startswith("where_")]
    matched = [f"where_{name}" for name in where]
    statement = sql.SQL("UPDATE {} SET {} WHERE {}").format(
        sql.Identifier(table.name),
        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in setting),
        sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in where),
    )
    values = [
        [*new, *(row[name] for name in matched)]
        for new, row in zip(_driver_values(table, setting, rows), rows, strict=True)
    ]
    with _psycopg(conn).cursor() as cursor:
        cursor.executemany(statement, values)
        return cursor.rowcount


def _driver_values(
    table: sa.Table, names: list[str], rows: Iterable[Mapping[str, Any]]
) -> Iterator[list[Any]]:
    """Each row's values for the columns `names`, in order, as psycopg takes them: JSON
    wrapped, timestamps checked for a time zone (as UtcDateTime checks them)."""
    convert = [_converter(table.c[name].type) for name in names]
    for row in rows:
        yield [to(row[name]) for name, to in zip(names, convert, strict=True)]


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
    return list(streamed_driver_rows(conn, query))


def streamed_driver_rows(conn: Connection, query: sa.Select[Any]) -> Iterator[tuple[Any, ...]]:
    """driver_rows one at a time, as the driver steps through them."""
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    try:
        cursor.execute(sql)
        # A few hundred at a time: the reading thread gives the interpreter lock up between
        # batches, so the caller's hashing runs while the next rows are read.
        while batch := cursor.fetchmany(256):
            yield from batch
    finally:
        cursor.close()
