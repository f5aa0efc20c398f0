"""Database helpers shared by every package: column types and the unit of work.

``transaction()`` is how services own their transaction: the outermost
``with transaction():`` commits once on success and rolls back on any
exception; nested ones (a service calling another, or the API's idempotency
wrapper around a service) join the outer one, so one request is one commit.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC

from sqlalchemy import BigInteger, DateTime, Integer
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


@contextmanager
def transaction():
    """Run the block in the request's one transaction; commit at the outermost."""
    session = db.session
    depth = session.info.get(_DEPTH_KEY, 0)
    session.info[_DEPTH_KEY] = depth + 1
    try:
        yield session
        if depth == 0:
            session.commit()
    except BaseException:
        if depth == 0:
            session.rollback()
        raise
    finally:
        session.info[_DEPTH_KEY] = depth
