"""Set-based writes for large batches (a pool of 100,000 pledges closing).

On PostgreSQL, rows travel as one array per column and are unnested
server-side: one statement per chunk instead of one round trip per row. On
SQLite, plain ``executemany``. Services still own the transaction: these run
on the session's connection, inside it.
"""

from __future__ import annotations

import json

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Integer, String, Table, Text

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


def int_array(values) -> str:
    """A PostgreSQL array literal of ints (or NULLs): fast to build and to send as one text parameter."""
    return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"


def _pg_param(column, values: list):
    return int_array(values) if _pg_type(column) in ("bigint", "integer") else values


def bulk_update(table: Table, rows: list[dict], *, key: str = "id", constants: dict | None = None) -> None:
    """``UPDATE table SET col = row[col] WHERE key = row[key]`` for every row (same columns in each).

    ``constants`` are columns set to one value for every row (sent once).
    """
    if not rows:
        return
    constants = constants or {}
    columns = [c for c in rows[0] if c != key]
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        cols = [table.c[key], *(table.c[c] for c in columns)]
        select_list = ", ".join(f"unnest(%({c.name})s::{_pg_type(c)}[]) AS {c.name}" for c in cols)
        assignments = ", ".join([*(f"{c} = v.{c}" for c in columns), *(f"{c} = %(const_{c})s" for c in constants)])
        sql = f"UPDATE {table.name} AS t SET {assignments} FROM (SELECT {select_list}) AS v WHERE t.{key} = v.{key}"
        for chunk in _chunks(rows):
            params = {c.name: _pg_param(c, [row[c.name] for row in chunk]) for c in cols}
            params.update({f"const_{c}": v for c, v in constants.items()})
            connection.exec_driver_sql(sql, params)
    else:
        from sqlalchemy import bindparam, update

        statement = (
            update(table).where(table.c[key] == bindparam(f"_{key}")).values({c: bindparam(f"_{c}") for c in columns})
        )
        if constants:
            statement = statement.values(constants)
        connection.execute(statement, [{f"_{k}": v for k, v in row.items()} for row in rows])


def bulk_insert(table: Table, rows: list[dict]) -> None:
    """Insert many rows (same columns in each) without returning ids (COPY on PostgreSQL)."""
    if not rows:
        return
    connection = db.session.connection()
    names = list(rows[0])
    if connection.dialect.name == "postgresql":
        as_json = {n for n in names if isinstance(table.c[n].type, JSON)}  # COPY takes JSON as its text
        dbapi_connection = connection.connection.dbapi_connection
        with dbapi_connection.cursor() as cursor:
            with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(
                        tuple(json.dumps(row[n]) if n in as_json and row[n] is not None else row[n] for n in names)
                    )
    else:
        from sqlalchemy import insert

        connection.execute(insert(table), rows)


def select_by_ids(table: Table, columns: list[str], ids: list[int], *, lock: bool = False) -> list[tuple]:
    """``SELECT columns FROM table WHERE id IN ids`` for many ids (optionally FOR UPDATE, in id order)."""
    if not ids:
        return []
    connection = db.session.connection()
    suffix = " ORDER BY id FOR UPDATE" if lock else ""
    if connection.dialect.name == "postgresql":
        sql = f"SELECT {', '.join(columns)} FROM {table.name} WHERE id = ANY(%(ids)s::bigint[]){suffix}"
        return [tuple(r) for r in connection.exec_driver_sql(sql, {"ids": int_array(ids)})]
    from sqlalchemy import select

    out: list[tuple] = []
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        out.extend(
            tuple(r)
            for r in connection.execute(
                select(*(table.c[c] for c in columns)).where(table.c.id.in_(chunk)).order_by(table.c.id)
            )
        )
    return out
