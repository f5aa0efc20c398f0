"""Database helpers shared by every package: column types and the unit of work.

``transaction()`` is how services own their transaction: the outermost
``with transaction():`` commits once on success and rolls back on any
exception; nested ones (a service calling another, or the API's idempotency
wrapper around a service) join the outer one, so one request is one commit.
"""

from __future__ import annotations

import logging
from datetime import UTC

from flask import Flask, g, request
from sqlalchemy import BigInteger, DateTime, Integer, inspect
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.types import TypeDecorator

from .extensions import db

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_DEPTH_KEY = "marketplace_uow_depth"


class _Transaction:
    """What ``transaction()`` returns: a plain class rather than a generator, as it wraps every transfer."""

    __slots__ = ("_session", "_depth")

    def __enter__(self):
        session = db.session()  # the request's Session itself: one scoped-session lookup, not one per call
        info = session.info
        self._session = session
        self._depth = depth = info.get(_DEPTH_KEY, 0)
        info[_DEPTH_KEY] = depth + 1
        return db.session

    def __exit__(self, exc_type, exc, traceback) -> None:
        session, depth = self._session, self._depth
        try:
            if depth == 0:
                if exc_type is None:
                    session.commit()
                else:
                    session.rollback()
        except BaseException:
            if exc_type is None:  # the commit failed: roll back, then raise the commit's error
                session.rollback()
            raise
        finally:
            session.info[_DEPTH_KEY] = depth


def transaction() -> _Transaction:
    """Run the block in the request's one transaction; commit at the outermost.

    ``with transaction() as session:`` gives the scoped session; on any
    exception the outermost rolls back and the exception propagates.
    """
    return _Transaction()


def attach_loaded(cls, values: dict):
    """A row just inserted by a Core statement as a persistent ``cls`` of the request's session, without a SELECT.

    Built as the ORM builds an instance for a loaded row: the columns straight
    into its ``__dict__``, no constructor and no events, its identity key set
    and its state in the session's identity map. Relationships load lazily
    when read; the commit expires it like any loaded object. ``values`` must
    hold the primary key (``id``).
    """
    session = db.session()
    mapper = inspect(cls)
    key = (mapper._identity_class, (values["id"],), None)
    identity_map = session.identity_map
    stale = identity_map.fast_get_state(key)
    if stale is not None:  # left over from a rolled-back transaction that used the same id
        stale_obj = stale.obj()
        if stale_obj is not None:
            session.expunge(stale_obj)
        else:
            identity_map.safe_discard(stale)
    obj = mapper.class_manager.new_instance()
    obj.__dict__.update(values)
    state = instance_state(obj)
    state.key = key
    state.identity_token = None
    state.session_id = session.hash_key
    identity_map._add_unpresent(state, key)
    return obj


# ---------------------------------------------------------------- ending a read-only request

_READ_OK = "marketplace_read_ok"


def end_reads_with_commit(app: Flask) -> None:
    """A GET or HEAD answered below 400 ends its transaction with COMMIT, not the teardown's ROLLBACK.

    For a transaction that wrote nothing the two are the same, but psycopg
    deallocates every prepared statement of the connection at each ROLLBACK,
    so PostgreSQL would parse and plan every statement of every page again;
    with COMMIT the connection keeps them (psycopg prepares a statement after
    five uses). It runs at the request's teardown, after the response is
    made and before Flask-SQLAlchemy removes the session, so nothing is
    expired under a template. Anything else — another method, an error
    answer, an exception, a session with pending changes — is left to the
    usual rollback.
    """

    @app.after_request
    def note_successful_read(response):
        if request.method in ("GET", "HEAD") and response.status_code < 400:
            g.setdefault(_READ_OK, True)
        return response

    @app.teardown_request
    def commit_successful_read(exc) -> None:
        if exc is None and g.pop(_READ_OK, False):
            finish_read()


def finish_read() -> None:
    """COMMIT the request's session transaction if it holds nothing pending (else leave it to the rollback)."""
    if not db.session.registry.has():
        return  # the request made no session: nothing to end
    session = db.session()
    if not session.in_transaction() or session.new or session.dirty or session.deleted:
        return
    try:
        session.commit()
    except Exception:  # noqa: BLE001 - the answer is already made; the teardown rolls back what is left
        logging.getLogger(__name__).warning("ending a read with COMMIT failed", exc_info=True)
        session.rollback()
