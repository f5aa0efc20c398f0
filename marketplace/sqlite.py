"""SQLite as the embedded default: foreign keys on, WAL, a busy timeout."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine

_installed = False


def configure_sqlite(app) -> None:
    global _installed
    options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    options.setdefault("connect_args", {}).setdefault("timeout", 30)
    if _installed:
        return
    _installed = True

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection, _record):
        module = type(dbapi_connection).__module__
        if not module.startswith("sqlite3"):
            return
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
