"""Race-safe inserts: ``INSERT ... ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite."""

from __future__ import annotations

from ..extensions import db


def insert_ignoring_conflict(model, values: dict, index_elements: list[str], index_where=None) -> bool:
    """Insert a row unless one with the same unique key exists (or is being inserted); True if inserted.

    On PostgreSQL a concurrent insert of the same key waits for the other
    transaction and then does nothing, so the caller can read the winner's row.
    """
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - other backends are not supported
        raise RuntimeError(f"unsupported database {dialect}")
    key = model.__table__.primary_key.columns.values()[0]
    statement = (
        insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=index_elements, index_where=index_where)
        .returning(key)  # no row comes back when the key was taken (rowcount is -1 with some drivers)
    )
    db.session.flush()
    return db.session.execute(statement).first() is not None
