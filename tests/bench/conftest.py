"""Benchmark harness: its own app on BENCH_DATABASE_URL (PostgreSQL only).

``make bench`` sets BENCH_DATABASE_URL. The schema of that database is
dropped and rebuilt by the real migrations once per run, so point it at a
database used for nothing else. Benchmarks that need no database (the pure
engines) run without it; those that take ``bench_app`` are skipped unless the
URL is PostgreSQL.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from marketplace import create_app
from marketplace.extensions import db

BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "").strip()


def bench_database_url() -> str:
    url = BENCH_DATABASE_URL
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@pytest.fixture(autouse=True)
def _clean_database():
    """Replaces the suite's per-test table wipe: benchmarks manage their own data."""
    yield


@pytest.fixture(scope="session")
def bench_app():
    url = bench_database_url()
    if not url.startswith("postgresql"):
        pytest.skip("set BENCH_DATABASE_URL to a PostgreSQL database to run the database benchmarks")
    from flask_migrate import upgrade

    from marketplace.config import Config

    engine_options = dict(Config.SQLALCHEMY_ENGINE_OPTIONS)
    engine_options.update(pool_size=12, max_overflow=4)
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
            "SECRET_KEY": "bench",
            "TEST_CLOCK": False,
            "PAYMENTS_PROVIDER": "sandbox",
        }
    )
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        db.engine.dispose()
    return app
