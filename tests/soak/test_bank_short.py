"""The HTTP bank test (tests/soak/bank.py) against gunicorn with workers killed mid-run.

In ``make test`` it runs on PostgreSQL only, short (SOAK_SECONDS, default
10 s of traffic, about half a minute in all), on the suite's database: the
suite empties the tables before it, the test owns them while gunicorn runs
(the server is stopped before the test ends), and the suite's ledger check
runs after it as after any test. ``make soak`` runs it for 60 s on a
database of its own.
"""

from __future__ import annotations

import os

import pytest

from .bank import run_soak

SECONDS = float(os.environ.get("SOAK_SECONDS", "10"))
STRICT = os.environ.get("SOAK_STRICT", "") not in ("", "0")  # 5xx answers fail the test too (make soak sets it)

pytestmark = pytest.mark.postgres


def test_money_survives_killed_workers(app, capsys):
    report = run_soak(app, seconds=SECONDS, clients=16, workers=4, kill_every=5.0, strict=STRICT)
    with capsys.disabled():
        print("\n" + str(report))
    assert report.problems == [], str(report)
