"""The one place the current time is read.

With ``MARKETPLACE_TEST_CLOCK`` on (tests only), an operator may set the
clock through ``PUT /api/v1/test-clock``; the value lives in the database so
every worker process sees the same time. It only moves forward.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask import current_app, has_app_context


def real_now() -> datetime:
    return datetime.now(UTC)


def now() -> datetime:
    if has_app_context() and current_app.config.get("TEST_CLOCK"):
        frozen = _frozen_now()
        if frozen is not None:
            return frozen
    return real_now()


def today() -> date:
    return now().date()


def _frozen_now() -> datetime | None:
    from .operators.models import TestClock

    return TestClock.current()
