"""Set-based writes for large batches (a pool of 100,000 pledges closing).

On PostgreSQL, rows travel as one array per column and are unnested
server-side: one statement per chunk instead of one round trip per row. On
SQLite, plain ``executemany``. Services still own the transaction: these run
on the session's connection, inside it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, DateTime, Integer, String, Table, Text

from .extensions import db

_CHUNK = 20_000


def _pg_type(column) -> str:
    kind = column.type
    impl = getattr(kind, "impl", kind)
    if isinstance(impl, BigInteger) or "BIGINT" in str(kind.compile(dialect=db.engine.dialect)).upper():
        return "bigint"
    if isinstance(impl, Integer):
        return "integer"
    if isinstance(impl, Boolean):
        return "boolean"
    if isinstance(impl, DateTime):
        return "timestamptz"
    if isinstance(impl, (String, Text)):
        return "text"
    raise TypeError(f"no array type for column {column}")


def _chunks(rows: list, size: int = _CHUNK):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def bulk_update(table: Table, rows: list[dict], *, key: str = "id") -> None:
    """``UPDATE table SET col = row[col] WHERE key = row[key]`` for every row (same columns in each)."""
    if not rows:
        return
    columns = [c for c in rows[0] if c != key]
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        cols = [table.c[key], *(table.c[c] for c in columns)]
        select_list = ", ".join(f"unnest(%({c.name})s::{_pg_type(c)}[]) AS {c.name}" for c in cols)
        assignments = ", ".join(f"{c} = v.{c}" for c in columns)
        sql = f"UPDATE {table.name} AS t SET {assignments} FROM (SELECT {select_list}) AS v WHERE t.{key} = v.{key}"
        for chunk in _chunks(rows):
            connection.exec_driver_sql(sql, {c.name: [row[c.name] for row in chunk] for c in cols})
    else:
        from sqlalchemy import bindparam, update

        statement = (
            update(table)
            .where(table.c[key] == bindparam(f"_{key}"))
            .values({c: bindparam(f"_{c}") for c in columns})
        )
        connection.execute(statement, [{f"_{k}": v for k, v in row.items()} for row in rows])


def bulk_insert(table: Table, rows: list[dict]) -> None:
    """Insert many rows (same columns in each) without returning ids."""
    if not rows:
        return
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        cols = [table.c[c] for c in rows[0]]
        names = ", ".join(c.name for c in cols)
        select_list = ", ".join(f"unnest(%({c.name})s::{_pg_type(c)}[])" for c in cols)
        sql = f"INSERT INTO {table.name} ({names}) SELECT {select_list}"
        for chunk in _chunks(rows):
            connection.exec_driver_sql(sql, {c.name: [row[c.name] for row in chunk] for c in cols})
    else:
        from sqlalchemy import insert

        connection.execute(insert(table), rows)
