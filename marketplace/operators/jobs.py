"""The scheduler's work: everything that is due "now".

Each capability registers a job with ``@due_job("name")``; ``run_due`` runs
them in registration order and reports what each did. ``flask run-due`` (cron)
and ``POST /api/v1/operations/run-due`` both call it.

Several hosts may run it at once (cron on every app server). On PostgreSQL
one run at a time holds a session-level advisory lock on a connection of its
own; a run that finds the lock taken does nothing and says so, so no job is
ever run twice side by side. Each job is also safe on its own: it locks and
re-checks every row it changes (a pool is closed, an installment collected,
a request expired exactly once) — the lock only saves duplicate work.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import text

from ..clock import now
from ..extensions import db

_JOBS: list[tuple[str, Callable[[datetime], dict]]] = []
LOCK_KEY = 0x6D6B74_7275_6E  # "mkt" "run" "n": this application's run-due advisory lock


def due_job(name: str):
    def register(func: Callable[[datetime], dict]):
        if name not in [n for n, _ in _JOBS]:
            _JOBS.append((name, func))
        return func

    return register


def registered_jobs() -> list[str]:
    return [name for name, _ in _JOBS]


@contextmanager
def _exclusive():
    """Yield True if this process may run the jobs now (PostgreSQL: advisory lock; elsewhere: always)."""
    engine = db.engine
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as connection:
        got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}).scalar()
        connection.commit()
        try:
            yield bool(got)
        finally:
            if got:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
                connection.commit()


def run_due(at: datetime | None = None) -> dict:
    moment = at or now()
    report: dict[str, dict] = {}
    with _exclusive() as mine:
        if not mine:
            return {"ran_at": moment, "jobs": {}, "skipped": "another run-due is running"}
        for name, func in _JOBS:
            report[name] = func(moment)
    return {"ran_at": moment, "jobs": report}
