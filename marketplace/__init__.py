"""The customer-in-charge marketplace: ``create_app`` is the table of contents."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from sqlalchemy import text

from .config import BASE_DIR, build_config
from .db import end_reads_with_commit
from .extensions import api, csrf, limiter, login_manager, migrate
from .extensions import db as sqla


def create_app(config: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        template_folder=str(BASE_DIR / "templates"),
        static_folder=str(BASE_DIR / "static"),
        instance_path=str(BASE_DIR / "instance"),
    )
    app.config.update(build_config(config))
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_security_headers(app)
    register_observability(app)
    register_template_helpers(app)
    register_commands(app)
    register_health(app)
    if app.config.get("BENCH_ROUTES"):
        register_bench_routes(app)
    return app


def register_extensions(app: Flask) -> None:
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        (BASE_DIR / "instance").mkdir(exist_ok=True)
        from .sqlite import configure_sqlite

        configure_sqlite(app)
    sqla.init_app(app)
    end_reads_with_commit(app)
    migrate.init_app(app, sqla, directory=str(BASE_DIR / "migrations"), render_as_batch=True)
    # The remember-me cookie is a year-long credential: Secure whenever the session cookie is.
    app.config.setdefault("REMEMBER_COOKIE_SECURE", app.config.get("SESSION_COOKIE_SECURE", False))
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.login_message_category = "info"
    csrf.init_app(app)
    limiter.init_app(app)
    api.init_app(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    from . import models  # noqa: F401  (every model registered with the metadata)


def register_blueprints(app: Flask) -> None:
    from .accounts import api as accounts_api
    from .accounts import views as accounts_views
    from .conversation import api as conversation_api
    from .conversation import views as conversation_views
    from .docs import views as docs_views
    from .lending import api as lending_api
    from .lending import views as lending_views
    from .main import views as main_views
    from .notifications import api as notifications_api
    from .notifications import views as notifications_views
    from .operators import api as operators_api
    from .operators import views as operators_views
    from .pools import api as pools_api
    from .pools import views as pools_views
    from .wallet import api as wallet_api
    from .wallet import views as wallet_views

    api_modules = (
        accounts_api,
        wallet_api,
        pools_api,
        lending_api,
        conversation_api,
        notifications_api,
        operators_api,
    )
    for module in api_modules:
        api.register_blueprint(module.bp)
    web_modules = (
        main_views,
        accounts_views,
        wallet_views,
        pools_views,
        lending_views,
        conversation_views,
        notifications_views,
        operators_views,
        docs_views,
    )
    for module in web_modules:
        app.register_blueprint(module.bp)
    # The API authenticates with Bearer tokens, never cookies: no CSRF there.
    for module in api_modules:
        csrf.exempt(module.bp)
    from .payments import webhooks as payments_webhooks

    app.register_blueprint(payments_webhooks.bp)
    csrf.exempt(payments_webhooks.bp)


def register_error_handlers(app: Flask) -> None:
    from .errors import register_error_handlers as register

    register(app)


def register_security_headers(app: Flask) -> None:
    @app.after_request
    def headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'self'",
        )
        response.headers.setdefault("Permissions-Policy", "geolocation=(), camera=(), microphone=()")
        if app.config.get("SESSION_COOKIE_SECURE"):
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response


def register_observability(app: Flask) -> None:
    from . import observability

    observability.init_app(app)


def register_template_helpers(app: Flask) -> None:
    from . import i18n
    from .templating import register

    i18n.init_app(app)
    register(app)


def register_commands(app: Flask) -> None:
    from .cli import register

    register(app)


def register_health(app: Flask) -> None:
    @app.get("/healthz")
    @limiter.exempt
    def healthz():
        try:
            sqla.session.execute(text("SELECT 1"))
            return jsonify(status="ok", database="ok")
        except Exception:  # noqa: BLE001 - any failure means "unreachable"
            logging.getLogger(__name__).exception("health check: database unreachable")
            try:
                sqla.session.rollback()
            except Exception:  # noqa: BLE001 - the connection may be gone too
                sqla.session.remove()
            return jsonify(status="degraded", database="unreachable"), 503


def register_bench_routes(app: Flask) -> None:
    """``make bench``'s baseline: the cheapest route this app and server can serve (MARKETPLACE_BENCH_ROUTES)."""

    @app.get("/bench/hello")
    def bench_hello():
        return "Hello, World!", 200, {"Content-Type": "text/plain; charset=utf-8"}
