"""Jinja filters and globals: money, times, the nav."""

from __future__ import annotations

from datetime import datetime, timezone

from .money import format_amount


def money(amount, currency: str = "") -> str:
    if amount is None:
        return "—"
    return format_amount(int(amount), currency)


def when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def register(app) -> None:
    app.jinja_env.filters["money"] = money
    app.jinja_env.filters["when"] = when

    @app.context_processor
    def globals_():
        from .clock import now

        return {"now": now, "currencies": app.config["CURRENCIES"]}
