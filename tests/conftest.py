"""Test harness: one app per session on SQLite or PostgreSQL (TEST_DATABASE_URL).

The schema is dropped and rebuilt by the real migrations at session start;
after every test the tables are emptied, so tests never depend on each other
and services can really commit (which the concurrency tests need). After
every test the ledger invariants are checked: each entry balanced, every
cached balance equal to the sum of its postings, no negative available.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import text

from marketplace import create_app
from marketplace.extensions import db, limiter

from .helpers import ApiClient, assert_ledger_invariants

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
_tmpdir = tempfile.mkdtemp(prefix="marketplace-tests-")
SQLITE_URL = f"sqlite:///{Path(_tmpdir) / 'test.db'}"


def database_url() -> str:
    return TEST_DATABASE_URL or SQLITE_URL


def is_postgres_run() -> bool:
    return database_url().startswith("postgresql")


def pytest_report_header(config):
    return f"database: {'PostgreSQL' if is_postgres_run() else 'SQLite'} ({database_url()})"


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (set TEST_DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords and not is_postgres_run():
            item.add_marker(skip_pg)


TEST_CONFIG = {
    "TESTING": True,
    "SQLALCHEMY_DATABASE_URI": database_url(),
    "SECRET_KEY": "test-secret-key",
    "TEST_CLOCK": True,
    "WTF_CSRF_ENABLED": True,
    "LOGIN_RATE_LIMIT": "10000 per minute",
    "COMMENT_RATE_LIMIT": "10000 per minute",
    "PAYMENTS_PROVIDER": "sandbox",
    "SERVER_NAME": None,
}


def _reset_schema(app) -> None:
    from flask_migrate import upgrade

    with app.app_context():
        if is_postgres_run():
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        else:
            db.engine.dispose()
            path = Path(database_url()[len("sqlite:///") :])
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        upgrade()
        db.engine.dispose()


def _fresh_request_globals(sender, **extra):
    """Tests keep an app context pushed, and Flask reuses it for test-client
    requests, so ``g`` would outlive a request. Forget who was signed in."""
    from flask import g

    for name in ("_login_user", "_api_member", "csrf_token", "_flask_babel"):
        g.pop(name, None)


@pytest.fixture(scope="session")
def app():
    from flask import request_started

    application = create_app(dict(TEST_CONFIG))
    request_started.connect(_fresh_request_globals, application)
    _reset_schema(application)
    return application


def _empty_tables(app) -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            if is_postgres_run():
                conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    conn.execute(text(f'DELETE FROM "{table}"'))
                conn.execute(text("DELETE FROM sqlite_sequence")) if conn.execute(
                    text("SELECT name FROM sqlite_master WHERE name='sqlite_sequence'")
                ).first() else None


@pytest.fixture(autouse=True)
def _clean_database(request, app):
    """Every test starts from empty tables; afterwards the ledger must be sound."""
    _empty_tables(app)
    limiter.reset()
    ctx = app.app_context()
    ctx.push()
    try:
        yield
        if "no_ledger_check" not in request.keywords:
            db.session.remove()
            assert_ledger_invariants()
    finally:
        db.session.remove()
        ctx.pop()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api(app):
    return ApiClient(app.test_client())
