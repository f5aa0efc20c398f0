"""Benchmark: ledger transfers per second beside ``pgbench -b tpcb-like`` on the same database.

Run by ``make bench`` (BENCH_DATABASE_URL must be PostgreSQL). For 1, 4 and 8
client threads it measures, for BENCH_SECONDS each (default 10, like
``pgbench -T 10``):

- single: one two-posting transfer per transaction through the service layer
  (``with transaction(): ledger.transfer(...)``) between random wallets of a
  shared pool of 1,000;
- batched: ``ledger.batch.post_entries`` with 1,000 transfers per transaction,
  each thread on its own slice of the wallets;
- pgbench: ``pgbench -b tpcb-like -c N -j N -T BENCH_SECONDS`` (scale 8, in a
  schema of its own that is dropped afterwards), run right before and right
  after ours at each client count; the reference is the mean of the two.
  pgbench vacuums its tables before each run; ours are vacuumed (VACUUM
  ANALYZE) before each of our runs too.

Targets: single >= 0.5 x pgbench, batched >= 5 x pgbench at the same client
count. It prints the figures and asserts only that the ledger is sound
afterwards (money conserved, every cached balance equal to its postings),
never a timing.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import threading
import time

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from marketplace.db import transaction
from marketplace.extensions import db
from marketplace.ledger import services as ledger
from marketplace.ledger.batch import NewEntry, post_entries
from marketplace.ledger.models import Account, JournalEntry
from marketplace.ledger.queries import reconcile

CLIENTS = (1, 4, 8)
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WALLETS = 1_000
BATCH = 1_000
OPENING = 10**9  # each wallet's opening balance, minor units
PGBENCH_SCHEMA = "pgbench_ledger_bench"
TARGETS = {"single": 0.5, "batched": 5.0}


def _open_wallets(app) -> list[int]:
    with app.app_context():
        with transaction():
            external = ledger.external_account("bench", "EUR")
            ids = [ledger.ensure_account(f"bench:{i}:wallet:EUR", "EUR", "wallet").id for i in range(WALLETS)]
        post_entries([NewEntry("deposit", [(external.id, OPENING), (wallet_id, -OPENING)]) for wallet_id in ids])
        db.session.remove()
    return ids


def _run_threads(clients: int, target) -> tuple[int, float]:
    """Start ``clients`` threads together; return (transfers done, seconds)."""
    barrier = threading.Barrier(clients + 1)
    counts: list[int] = []
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            counts.append(target(k, barrier))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert not errors, errors
    return sum(counts), elapsed


def single_transfers(app, wallet_ids: list[int], clients: int) -> float:
    def work(k: int, barrier: threading.Barrier) -> int:
        rng = random.Random(1000 + k)
        with app.app_context():
            try:
                wallets = db.session.execute(select(Account).where(Account.id.in_(wallet_ids))).scalars().all()
                # Held like a long-lived caller holds them: loaded once, outside the session, so a
                # commit does not expire 1,000 objects (the service only needs their ids).
                db.session.expunge_all()
                db.session.commit()
                barrier.wait()
                stop, done = time.perf_counter() + SECONDS, 0
                while time.perf_counter() < stop:
                    source, destination = rng.sample(wallets, 2)
                    with transaction():
                        ledger.transfer("bench", source, destination, rng.randint(1, 10_000))
                    done += 1
                return done
            finally:
                db.session.remove()

    done, elapsed = _run_threads(clients, work)
    return done / elapsed


def batched_transfers(app, wallet_ids: list[int], clients: int) -> float:
    def work(k: int, barrier: threading.Barrier) -> int:
        rng = random.Random(2000 + k)
        mine = wallet_ids[k::clients]  # disjoint slices: batches in parallel do not queue on each other's rows
        with app.app_context():
            try:
                barrier.wait()
                stop, done = time.perf_counter() + SECONDS, 0
                while time.perf_counter() < stop:
                    entries = []
                    for _ in range(BATCH):
                        source, destination = rng.sample(mine, 2)
                        amount = rng.randint(1, 10_000)
                        entries.append(NewEntry("bench", [(source, amount), (destination, -amount)]))
                    with transaction():
                        post_entries(entries)
                    done += BATCH
                return done
            finally:
                db.session.remove()

    done, elapsed = _run_threads(clients, work)
    return done / elapsed


class PgBench:
    """``pgbench`` on the same database, in a schema of its own."""

    def __init__(self, url: str):
        parsed = make_url(url)
        self.args = ["-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432)]
        self.args += ["-U", parsed.username or "postgres", parsed.database]
        self.env = dict(os.environ, PGOPTIONS=f"-c search_path={PGBENCH_SCHEMA}")
        if parsed.password:
            self.env["PGPASSWORD"] = parsed.password
        self.binary = shutil.which("pgbench")

    def init(self) -> None:
        with db.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {PGBENCH_SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {PGBENCH_SCHEMA}"))
        self._run(["-i", "-s", "8", "-q"])

    def tps(self, clients: int) -> float:
        out = self._run(["-b", "tpcb-like", "-c", str(clients), "-j", str(clients), "-T", str(SECONDS)])
        match = re.search(r"tps = ([0-9.]+)", out)
        assert match, out
        return float(match.group(1))

    def drop(self) -> None:
        with db.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {PGBENCH_SCHEMA} CASCADE"))

    def _run(self, args: list[str]) -> str:
        done = subprocess.run([self.binary, *args, *self.args], env=self.env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr


def _vacuum() -> None:
    """VACUUM ANALYZE the ledger's tables before each of our runs, as pgbench does before each of its own.

    pgbench vacuums its branches and tellers (and truncates its history) before
    every run; our runs leave hundreds of thousands of dead balance-row versions
    behind, and with autovacuum off (as on the test server) the next run would
    pay for them: the comparison would be of table bloat, not of the two paths.
    """
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("accounts", "journal_entries", "postings"):
            conn.execute(text(f"VACUUM ANALYZE {table}"))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def test_ledger_transfers_per_second_beside_pgbench(bench_app):
    app = bench_app
    wallet_ids = _open_wallets(app)
    pgbench = PgBench(app.config["SQLALCHEMY_DATABASE_URI"])
    rows = []
    with app.app_context():
        if pgbench.binary:
            pgbench.init()
        try:
            for clients in CLIENTS:
                # pgbench right before and right after ours, averaged: the machine's load drifts.
                before = pgbench.tps(clients) if pgbench.binary else None
                _vacuum()
                single = single_transfers(app, wallet_ids, clients)
                _vacuum()
                batched = batched_transfers(app, wallet_ids, clients)
                after = pgbench.tps(clients) if pgbench.binary else None
                reference = (before + after) / 2 if pgbench.binary else None
                rows.append(("single", clients, single, reference, before, after))
                rows.append(("batched", clients, batched, reference, before, after))
        finally:
            if pgbench.binary:
                pgbench.drop()

        options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
        pool = f"pool_pre_ping={options.get('pool_pre_ping', False)}, pool_recycle={options.get('pool_recycle', -1)}"
        print(f"\nLedger transfers per second vs pgbench -b tpcb-like (same database, {SECONDS} s each,")
        print(f"{os.cpu_count()} CPUs, {pool}, batches of {BATCH}, {WALLETS} wallets)")
        print(
            f"{'mode':<8} {'clients':>7} {'our TPS':>10} {'pgbench TPS':>12} {'ratio':>7} {'target':>7}  met"
            "   (pgbench before / after)"
        )
        for mode, clients, ours, reference, before, after in rows:
            ratio = ours / reference if reference else None
            met = "-" if ratio is None else ("yes" if ratio >= TARGETS[mode] else "NO")
            ratio_text = "n/a" if ratio is None else f"{ratio:.2f}x"
            print(
                f"{mode:<8} {clients:>7} {_fmt(ours):>10} {_fmt(reference):>12} {ratio_text:>7} "
                f"{TARGETS[mode]:>6}x  {met:<3}   ({_fmt(before)} / {_fmt(after)})"
            )
        if not pgbench.binary:
            print("pgbench is not installed: no reference figures")

        # Sound afterwards: money conserved, every cached balance equal to its postings.
        total = db.session.execute(
            select(func.sum(Account.balance)).where(Account.code.like("bench:%:wallet:EUR"))
        ).scalar_one()
        assert total == WALLETS * OPENING
        assert reconcile() == []
        assert db.session.execute(select(func.count(JournalEntry.id))).scalar_one() > WALLETS
        db.session.remove()
