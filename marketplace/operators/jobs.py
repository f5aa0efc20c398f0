"""The scheduler's work: everything that is due "now".

Each capability registers a job with ``@due_job("name")``; ``run_due`` runs
them in registration order and reports what each did. ``flask run-due`` (cron)
and ``POST /api/v1/operations/run-due`` both call it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ..clock import now

_JOBS: list[tuple[str, Callable[[datetime], dict]]] = []


def due_job(name: str):
    def register(func: Callable[[datetime], dict]):
        if name not in [n for n, _ in _JOBS]:
            _JOBS.append((name, func))
        return func

    return register


def registered_jobs() -> list[str]:
    return [name for name, _ in _JOBS]


def run_due(at: datetime | None = None) -> dict:
    moment = at or now()
    report: dict[str, dict] = {}
    for name, func in _JOBS:
        report[name] = func(moment)
    return {"ran_at": moment, "jobs": report}
