"""Plain reads for the busiest read-only requests: prepared driver SQL, no session transaction.

``GET /api/v1/pools/{id}`` and the pool page read a token and one snapshot
statement. Through the ORM session each read also pays for the session's
transaction (``BEGIN`` and ``COMMIT``, two round trips, and SQLAlchemy's
bookkeeping around them), which costs more than the reads. Here, on
PostgreSQL, a request that has not opened its transaction yet borrows a
pooled connection in autocommit for them: each statement is its own
transaction, which for reads under READ COMMITTED changes nothing (every
statement takes its own snapshot either way). The statements run as
prepared driver SQL with the ledger's fast path (``_pg_fetch``: errors go
through SQLAlchemy's handler, a lost connection is invalidated).

Anywhere else (SQLite, or a request that already read or wrote through the
session) the reads join the session's transaction, as any read does.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection

from .extensions import db
from .ledger.services import _pg_fetch


@contextmanager
def read_connection() -> Iterator[Connection]:
    """A connection for a few plain reads: autocommit on PostgreSQL outside the session's transaction."""
    session = db.session() if db.session.registry.has() else None  # no Session made when there is none
    if session is not None and (session.in_transaction() or session.new or session.dirty or session.deleted):
        if session.new or session.dirty or session.deleted:
            session.flush()  # plain selects are not autoflushed for
        yield session.connection()
        return
    engine = db.engine
    if engine.dialect.name != "postgresql":
        yield db.session.connection()
        return
    connection = engine.connect()
    dbapi_connection = connection.connection.dbapi_connection
    dbapi_connection.autocommit = True  # no BEGIN, no COMMIT (the driver's flag: no round trip)
    try:
        yield connection
    finally:
        try:
            if not connection.invalidated:
                dbapi_connection.autocommit = False  # as the pool lends it to everyone else
        finally:
            connection.close()


@functools.cache
def _driver_sql(statement, dialect) -> str:
    """A Core select compiled once as PostgreSQL driver SQL.

    The statement's own constants (``literal()`` values: part numbers,
    statuses) are written into the SQL, as the dialect renders literals, so
    that each execution sends only the caller's parameters (``%(name)s``).
    """
    compiled = statement.compile(dialect=dialect)
    sql = compiled.string
    for name, value in compiled.params.items():
        if value is not None:
            render = compiled.binds[name].type.literal_processor(dialect)
            sql = sql.replace(f"%({name})s", render(value))
    return sql


def fetch(connection: Connection, statement, params: dict, role: str) -> tuple[tuple, ...]:
    """``statement``'s rows as plain tuples: on PostgreSQL prepared driver SQL (the driver's own values,
    no SQLAlchemy result processing: ``timestamptz`` in the connection's time zone, ``sum()`` as Decimal),
    elsewhere through SQLAlchemy. ``role`` names the driver cursor it runs on (one per statement)."""
    if connection.dialect.name == "postgresql":
        return tuple(_pg_fetch(connection, _driver_sql(statement, connection.dialect), params, role))
    return tuple(tuple(row) for row in connection.execute(statement, params))
