"""Configuration: the only module that reads ``os.environ``.

Every setting of shared/DESIGN.md's table is read here, once, into a plain
class whose attributes Flask copies into ``app.config``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return int(raw)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _currencies(raw: str) -> tuple[str, ...]:
    codes = [c.strip().upper() for c in raw.split(",") if c.strip()]
    for code in codes:
        if len(code) != 3 or not code.isalpha():
            raise ValueError(f"MARKETPLACE_CURRENCIES: {code!r} is not an ISO 4217 code")
    return tuple(codes)


def default_database_url() -> str:
    return f"sqlite:///{BASE_DIR / 'instance' / 'marketplace.db'}"


class Config:
    """Settings read from the environment when the class body runs."""

    ENV_NAME = os.environ.get("MARKETPLACE_ENV", "development")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL") or default_database_url()
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    # No pool_pre_ping: it costs every transaction a round trip (a third of a ledger transfer's
    # time on the wire). A connection the server dropped fails its transaction instead, which
    # rolls back; SQLAlchemy then invalidates it and the pool's older connections, and the next
    # transaction reconnects. pool_recycle retires connections before idle timeouts cut them.
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_recycle": 1800}
    SECRET_KEY = os.environ.get("SECRET_KEY") or ""

    PAYMENTS_PROVIDER = os.environ.get("MARKETPLACE_PAYMENTS", "sandbox")
    STRIPE_API_KEY = os.environ.get("STRIPE_API_KEY", "")
    STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")
    STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
    # The deposit page's card form: Stripe.js with the publishable key (a Stripe-compatible stand-in in tests).
    STRIPE_PUBLISHABLE_KEY = os.environ.get("STRIPE_PUBLISHABLE_KEY", "")
    STRIPE_JS_URL = os.environ.get("STRIPE_JS_URL", "https://js.stripe.com/v3/")

    CURRENCIES = _currencies(os.environ.get("MARKETPLACE_CURRENCIES", "EUR,GBP,USD"))
    POOL_FEE_BPS = _int("POOL_FEE_BPS", 100)
    ORIGINATION_FEE_BPS = _int("ORIGINATION_FEE_BPS", 100)
    LOAN_FUNDING_DAYS = _int("LOAN_FUNDING_DAYS", 14)
    DEFAULT_AFTER_DAYS = _int("DEFAULT_AFTER_DAYS", 120)
    TEST_CLOCK = _flag("MARKETPLACE_TEST_CLOCK")
    # make bench only: a hello-world route served beside the real ones (never in production).
    BENCH_ROUTES = _flag("MARKETPLACE_BENCH_ROUTES")

    # Sessions and cookies
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _flag("SESSION_COOKIE_SECURE")
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = None

    # Rate limits (Flask-Limiter); storage may point at Redis in production.
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_ENABLED = True
    RATELIMIT_HEADERS_ENABLED = True
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "10 per minute")
    COMMENT_RATE_LIMIT = os.environ.get("COMMENT_RATE_LIMIT", "20 per minute")

    # flask-smorest / OpenAPI
    API_TITLE = "Customer-in-charge marketplace API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_REDOC_PATH = None
    OPENAPI_SWAGGER_UI_PATH = None

    @classmethod
    def as_dict(cls) -> dict:
        return {k: getattr(cls, k) for k in dir(cls) if k.isupper()}


def build_config(overrides: dict | None = None) -> dict:
    """Environment settings plus ``overrides``; fills in a dev secret key."""
    values = Config.as_dict()
    if overrides:
        values.update(overrides)
    if not values.get("SECRET_KEY"):
        if values.get("ENV_NAME") == "production":
            raise RuntimeError("SECRET_KEY must be set in production")
        values["SECRET_KEY"] = secrets.token_hex(32)
    uri = values["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgres://"):
        values["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://" + uri[len("postgres://") :]
    elif uri.startswith("postgresql://"):
        values["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://" + uri[len("postgresql://") :]
    return values
