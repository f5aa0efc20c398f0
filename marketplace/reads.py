"""Plain reads for the busiest read-only requests: prepared driver SQL, no session transaction.

``GET /api/v1/pools/{id}`` and the pool page read a token and one snapshot
statement. Through the ORM session each read also pays for the session's
transaction (``BEGIN`` and ``COMMIT``, two round trips, and SQLAlchemy's
bookkeeping around them), which costs more than the reads. Here, on
PostgreSQL, a request that has not opened its transaction yet reads on its
thread's reader, a connection in autocommit kept from one request to the
next: each statement is its own transaction, which for reads under READ
COMMITTED changes nothing (every statement takes its own snapshot either
way). The statements run as
prepared driver SQL with the ledger's fast path (``_pg_fetch``: errors go
through SQLAlchemy's handler, a lost connection is invalidated).

Anywhere else (SQLite, or a request that already read or wrote through the
session) the reads join the session's transaction, as any read does.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .extensions import db
from .ledger.services import _pg_fetch


@contextmanager
def read_connection() -> Iterator[Connection]:
    """A connection for a few plain reads: this thread's autocommit reader on PostgreSQL outside the session's
    transaction (:func:`reader`), else the session's own connection."""
    session = db.session() if db.session.registry.has() else None  # no Session made when there is none
    if session is not None and (session.in_transaction() or session.new or session.dirty or session.deleted):
        if session.new or session.dirty or session.deleted:
            session.flush()  # plain selects are not autoflushed for
        yield session.connection()
        return
    if db.engine.dialect.name != "postgresql":
        yield db.session.connection()
        return
    yield reader()


# Each thread's reader: a connection of an engine of its own whose connections are all in autocommit
# (never one of the session's pool, which must get back the transactional connections it lent), kept
# open from one request to the next: no pool checkout and return, no autocommit switched on and off
# around every read. It is replaced when it was invalidated (a lost connection), once it has been open
# longer than the pool's ``pool_recycle``, and for another app (tests make several).
_readers = threading.local()
_forked_away: list = []


def _forget_readers_in_child() -> None:
    """A forked child must not use (nor close: that would end it for the parent) the parent's connection."""
    held = getattr(_readers, "held", None)
    if held is not None:
        _forked_away.append(held)  # kept referenced: never garbage-collected into a pool either
        _readers.held = None


os.register_at_fork(after_in_child=_forget_readers_in_child)


def reader() -> Connection:
    """This thread's reader connection for the current app (PostgreSQL), opened on first use."""
    app = current_app._get_current_object()
    held = getattr(_readers, "held", None)
    if held is not None:
        connection, held_app, expires = held
        fresh = expires is None or time.monotonic() < expires
        if held_app is app and fresh and not connection.invalidated and not connection.closed:
            return connection
        _readers.held = None
        connection.close()
    engine = _read_engine(app)
    connection = engine.connect()
    recycle = engine.pool._recycle
    _readers.held = (connection, app, time.monotonic() + recycle if recycle >= 0 else None)  # None: never recycled
    return connection


def _read_engine(app) -> Engine:
    """The app's engine for readers: its database and engine options, every connection in autocommit."""
    engine = app.extensions.get("marketplace.read_engine")
    if engine is None:
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}))
        options.update(isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=-1)
        engine = app.extensions["marketplace.read_engine"] = create_engine(db.engine.url, **options)
    return engine


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
    if connection.dialect.name != "postgresql":
        return tuple(tuple(row) for row in connection.execute(statement, params))
    sql = _driver_sql(statement, connection.dialect)
    try:
        return tuple(_pg_fetch(connection, sql, params, role))
    except DBAPIError as exc:
        held = getattr(_readers, "held", None)
        if not (exc.connection_invalidated and held is not None and held[0] is connection):
            raise
    # The reader had lost its connection (a restarted or failed-over server, an idle timeout): a read
    # changes nothing, so it runs once more on a new one.
    return tuple(_pg_fetch(reader(), sql, params, role))
