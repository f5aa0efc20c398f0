"""Benchmark: ``run-due`` collecting 10,000 due installments on PostgreSQL (target <= 60 s).

BENCH_LOANS (default 10,000) active loans, each of 3 parts from a pool of 200
lenders over 12 months, all disbursed one month before the benchmark's "now",
so installment 1 of every loan is due. Each borrower's wallet holds that
installment, except ~5 % who hold half of it (collected partly) and ~2 % who
hold nothing (nothing collected, installment late). It times
``repayments.collect_due`` (the ``collect_installments`` job of ``run-due``),
then, on installment 2's due date after the full payers were paid in again,
the whole ``operators.jobs.run_due``.

The setup (in a forked child, so its memory never counts against the
collection) writes exactly the rows ``loans.disburse`` leaves behind, with
bulk COPY; money enters only through balanced journal entries posted with
``ledger.batch.post_entries``: per loan one entry debiting the receivable by
the loan's amount and crediting each part's claim by the part's amount (it
stands in for the parts' funding and the payout), per member one deposit.

The setup ends with ANALYZE, as autovacuum would after such a load (it may be
off on a test server; BENCH_NO_ANALYZE=1 skips it: the per-loan lookups then
take a bad plan and the collection is several times slower). Besides the wall
time it prints the CPU seconds of this process and of the database server
(when it runs on this host) and the statements sent: on a busy machine the
wall time swells, CPU is what the work costs.

It prints the figures and asserts only that the result is sound (ledger
reconciled and balanced, schedules, parts, claims and lenders' wallets agree
with what was collected), never the time. BENCH_PROFILE=1 profiles collect_due.
"""

from __future__ import annotations

import json
import os
import random
import resource
import time
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy import event, func, select, text

from marketplace.extensions import db

LOANS = int(os.environ.get("BENCH_LOANS", "10000"))
LENDERS = 200
PARTS = 3
TERM = 12
CURRENCY = "EUR"
SHORT_PERCENT = 5  # wallets holding half of installment 1
EMPTY_PERCENT = 2  # wallets holding nothing
LENDER_OPENING = 1_000_000
SEED = 20270301
ANALYZE = os.environ.get("BENCH_NO_ANALYZE", "") in ("", "0")  # BENCH_NO_ANALYZE=1: collect on unanalyzed tables


@cache
def _part_schedule(principal: int, rate_bps: int):
    from marketplace.lending.amortization import part_schedule

    return tuple(part_schedule(principal, rate_bps, TERM))


def _new_ids(table: str, n: int) -> list[int]:
    """``n`` fresh ids from the table's own sequence (so later inserts never collide)."""
    if n == 0:
        return []
    rows = db.session.connection().exec_driver_sql(
        f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %(n)s)", {"n": n}
    )
    return sorted(row[0] for row in rows)


def _build_world(seed: int, moment: datetime) -> dict:
    """Members, wallets, offers, funded requests, active loans with parts and schedules; opening entries."""
    from flask import current_app

    from marketplace.accounts.models import Member
    from marketplace.bulk import bulk_insert
    from marketplace.db import transaction
    from marketplace.ledger import services as ledger
    from marketplace.ledger.batch import NewEntry, post_entries
    from marketplace.ledger.models import Account
    from marketplace.lending import amortization
    from marketplace.lending.models import (
        Installment,
        LenderCashFlow,
        LendingOffer,
        Loan,
        LoanPart,
        LoanRequest,
        PartInstallment,
    )
    from marketplace.money import fee as fee_of

    rng = random.Random(seed)
    fee_bps = current_app.config["ORIGINATION_FEE_BPS"]
    start = amortization.due_date(moment.date(), -1)  # installment 1 falls due on (or just before) today
    disbursed_at = datetime.combine(start, moment.timetz())
    requested_at = disbursed_at - timedelta(hours=6)
    dates = amortization.due_dates(start, TERM)
    assert dates[0] <= moment.date() < dates[1]
    tag = rng.randrange(10**9)

    with transaction():
        borrowers = _new_ids("members", LOANS)
        lenders = _new_ids("members", LENDERS)
        bulk_insert(
            Member.__table__,
            [
                dict(
                    id=member_id,
                    email=f"loanbench{tag}-{i}@example.test",
                    password_hash="x",
                    display_name=f"Loan bench member {i}",
                    role="member",
                    kyc_status="verified",
                    created_at=requested_at - timedelta(days=30),
                )
                for i, member_id in enumerate(borrowers + lenders)
            ],
        )
        lender_rate = [rng.randrange(400, 2_000, 25) for _ in range(LENDERS)]

        # The loans: 3 parts from 3 different lenders each, their schedules, what each wallet holds.
        loan_ids = _new_ids("loans", LOANS)
        request_ids = _new_ids("loan_requests", LOANS)
        part_ids = _new_ids("loan_parts", LOANS * PARTS)
        specs = []  # (loan index, [(lender index, amount, rate)], part schedules, loan rows, wallet)
        groups = {"full": [], "half": [], "empty": []}
        for i in range(LOANS):
            chosen = rng.sample(range(LENDERS), PARTS)
            parts = [(k, rng.randrange(10_000, 500_000, 1_000), lender_rate[k]) for k in chosen]
            schedules = [list(_part_schedule(amount, rate)) for _, amount, rate in parts]
            rows = amortization.sum_schedules(schedules)
            draw = rng.randrange(100)
            group = "empty" if draw < EMPTY_PERCENT else "half" if draw < EMPTY_PERCENT + SHORT_PERCENT else "full"
            first = rows[0].total
            wallet = {"full": first, "half": first // 2, "empty": 0}[group]
            groups[group].append(loan_ids[i])
            specs.append((parts, schedules, rows, wallet))

        # Offers: one per lender (that lent), filled, nothing left, no hold.
        lent: dict[int, list[int]] = {}
        for parts, *_ in specs:
            for k, amount, _ in parts:
                lent.setdefault(k, []).append(amount)
        active_lenders = sorted(lent)
        offer_ids = dict(zip(active_lenders, _new_ids("lending_offers", len(active_lenders)), strict=True))
        bulk_insert(
            LendingOffer.__table__,
            [
                dict(
                    id=offer_ids[k],
                    lender_id=lenders[k],
                    amount=sum(lent[k]),
                    remaining=0,
                    currency=CURRENCY,
                    min_rate_bps=lender_rate[k],
                    max_part=max(1_000, max(lent[k])),
                    terms="[]",
                    grades="[]",
                    status="filled",
                    hold_id=None,
                    created_at=requested_at - timedelta(days=1),
                    cancelled_at=None,
                )
                for k in active_lenders
            ],
        )

        request_rows, loan_rows, part_rows, installment_rows, part_installment_rows, flow_rows = [], [], [], [], [], []
        for i, (parts, schedules, rows, _) in enumerate(specs):
            amount = sum(a for _, a, _ in parts)
            pairs = [(a, rate) for _, a, rate in parts]
            fee = fee_of(amount, fee_bps)
            loan_id, request_id = loan_ids[i], request_ids[i]
            request_rows.append(
                dict(
                    id=request_id,
                    borrower_id=borrowers[i],
                    amount=amount,
                    currency=CURRENCY,
                    term_months=TERM,
                    max_rate_bps=max(rate for _, rate in pairs) + 100,
                    purpose="Benchmark loan",
                    monthly_income=400_000,
                    monthly_debt=0,
                    grade="B",
                    grade_score=700,
                    grade_reasons="[]",
                    status="funded",
                    funded_amount=amount,
                    loan_id=loan_id,
                    created_at=requested_at,
                    expires_at=requested_at + timedelta(days=14),
                    resolved_at=disbursed_at,
                )
            )
            loan_rows.append(
                dict(
                    id=loan_id,
                    request_id=request_id,
                    borrower_id=borrowers[i],
                    amount=amount,
                    currency=CURRENCY,
                    term_months=TERM,
                    rate_bps=amortization.weighted_rate(pairs),
                    apr_bps=amortization.apr_bps(amount - fee, [row.total for row in rows]),
                    fee=fee,
                    status="active",
                    disbursed_at=disbursed_at,
                    outstanding_principal=amount,
                    closed_at=None,
                )
            )
            for row in rows:
                installment_rows.append(
                    dict(
                        loan_id=loan_id,
                        number=row.number,
                        due_date=dates[row.number - 1],
                        principal=row.principal,
                        interest=row.interest,
                        paid_principal=0,
                        paid_interest=0,
                        status="due" if row.total else "paid",
                        paid_at=None if row.total else disbursed_at,
                    )
                )
            for j, ((k, part_amount, rate), schedule) in enumerate(zip(parts, schedules, strict=True)):
                part_id = part_ids[PARTS * i + j]
                part_rows.append(
                    dict(
                        id=part_id,
                        request_id=request_id,
                        loan_id=loan_id,
                        offer_id=offer_ids[k],
                        lender_id=lenders[k],
                        currency=CURRENCY,
                        amount=part_amount,
                        rate_bps=rate,
                        hold_id=None,
                        status="active",
                        outstanding_principal=part_amount,
                        principal_received=0,
                        interest_received=0,
                        written_off=0,
                        created_at=requested_at,
                    )
                )
                part_installment_rows += [
                    dict(
                        part_id=part_id,
                        loan_id=loan_id,
                        number=row.number,
                        principal=row.principal,
                        interest=row.interest,
                        paid_principal=0,
                        paid_interest=0,
                    )
                    for row in schedule
                ]
                flow_rows.append(
                    dict(
                        lender_id=lenders[k],
                        part_id=part_id,
                        currency=CURRENCY,
                        on_date=start,
                        amount=-part_amount,
                        interest=0,
                        entry_id=None,
                    )
                )
        bulk_insert(LoanRequest.__table__, request_rows)
        bulk_insert(Loan.__table__, loan_rows)
        bulk_insert(LoanPart.__table__, part_rows)
        bulk_insert(Installment.__table__, installment_rows)
        bulk_insert(PartInstallment.__table__, part_installment_rows)
        bulk_insert(LenderCashFlow.__table__, flow_rows)

        # Accounts, all at 0: wallets, each loan's receivable, each part's claim.
        kinds = ledger.ACCOUNT_KINDS

        def account(code: str, kind: str, member_id: int) -> dict:
            return dict(
                code=code,
                currency=CURRENCY,
                kind=kind,
                normal_side=kinds[kind],
                member_id=member_id,
                balance=0,
                held=0,
                created_at=requested_at,
            )

        account_rows = [account(ledger.wallet_code(m, CURRENCY), "wallet", m) for m in borrowers + lenders]
        account_rows += [
            account(f"loan:{loan_ids[i]}:receivable:{CURRENCY}", "loan", borrowers[i]) for i in range(LOANS)
        ]
        account_rows += [
            account(f"loan:{row['loan_id']}:part:{row['id']}:{CURRENCY}", "loan_part", row["lender_id"])
            for row in part_rows
        ]
        bulk_insert(Account.__table__, account_rows)
        external = ledger.external_account("sandbox", CURRENCY).id
        ids = dict(  # every account of these members: their wallets, receivables and claims
            db.session.execute(
                text("SELECT code, id FROM accounts WHERE member_id = ANY(:ids)"), {"ids": borrowers + lenders}
            ).all()
        )

        # Money in, only by balanced entries: each loan's funding and payout in one, then deposits.
        entries = []
        for i, (parts, *_) in enumerate(specs):
            amount = sum(a for _, a, _ in parts)
            postings = [(ids[f"loan:{loan_ids[i]}:receivable:{CURRENCY}"], amount)]
            postings += [
                (ids[f"loan:{loan_ids[i]}:part:{part_ids[PARTS * i + j]}:{CURRENCY}"], -a)
                for j, (_, a, _) in enumerate(parts)
            ]
            entries.append(NewEntry("bench_loan_opening", postings, memo=f"Loan {loan_ids[i]}: opening state"))
        deposits = [(borrowers[i], wallet) for i, (*_, wallet) in enumerate(specs) if wallet]
        deposits += [(m, LENDER_OPENING) for m in lenders]
        entries += [
            NewEntry("deposit", [(external, amount), (ids[ledger.wallet_code(m, CURRENCY)], -amount)], memo="bench")
            for m, amount in deposits
        ]
        post_entries(entries)
    db.session.remove()
    if ANALYZE:
        # What autovacuum does after a bulk load (it may be off on a test server): without statistics the
        # planner takes the (status, due_date) index for one loan's open installments, ~5 ms a loan.
        with db.engine.begin() as connection:  # committed: statistics from a rolled-back ANALYZE are lost
            connection.execute(text("ANALYZE"))
    return {
        "loan_ids": loan_ids,
        "groups": groups,
        "borrowers": borrowers,
        "lenders": lenders,
        "dates": dates,
        "entries": len(entries),
        "installment_rows": len(installment_rows),
        "part_installment_rows": len(part_installment_rows),
    }


_APP = None


def _build_in_child(seed: int, moment: datetime) -> dict:
    """Runs in a forked process, so the setup's memory never counts against the collection."""
    with _APP.app_context():
        db.engine.dispose(close=False)
        return _build_world(seed, moment)


def _backend_cpu() -> dict[int, float] | None:
    """CPU seconds so far of each server process on this database, when the server runs on this host."""
    with db.engine.connect() as connection:
        pids = connection.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars()
        pids = list(pids)
    ticks, out = os.sysconf("SC_CLK_TCK"), {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        out[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return out


class _Meter:
    """A block's wall time, this process's CPU, the database server's CPU and SQL statements sent.

    On a loaded machine the wall time swells; client + server CPU is what the work costs.
    """

    def _count(self, *args) -> None:
        self.statements += 1

    def __enter__(self) -> _Meter:
        self.statements = 0
        event.listen(db.engine, "before_cursor_execute", self._count)
        self._server = _backend_cpu()
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.client = time.process_time() - self._cpu
        event.remove(db.engine, "before_cursor_execute", self._count)
        after = _backend_cpu()
        self.server = None
        if after is not None and self._server is not None:
            self.server = sum(v - self._server.get(pid, 0.0) for pid, v in after.items())

    def describe(self) -> str:
        server = "n/a" if self.server is None else f"{self.server:.1f} s"
        return (
            f"CPU: this process {self.client:.1f} s, database server {server}; "
            f"{self.statements:,} SQL statements through SQLAlchemy"
        )


def _wallets(member_ids: list[int]) -> dict[int, int]:
    from marketplace.ledger.models import Account

    return dict(
        db.session.execute(
            select(Account.member_id, Account.balance).where(
                Account.kind == "wallet", Account.currency == CURRENCY, Account.member_id.in_(member_ids)
            )
        ).all()
    )


def _check_sound(world: dict) -> list[str]:
    """Claims == parts' outstanding; receivable == loan's outstanding == sum of its parts'."""
    problems = []
    rows = db.session.execute(
        text(
            "SELECT p.id, p.outstanding_principal, a.balance FROM loan_parts p "
            "JOIN accounts a ON a.code = 'loan:' || p.loan_id || ':part:' || p.id || ':' || p.currency "
            "WHERE p.loan_id = ANY(:ids)"
        ),
        {"ids": world["loan_ids"]},
    ).all()
    if len(rows) != LOANS * PARTS:
        problems.append(f"{len(rows)} part claims found, not {LOANS * PARTS}")
    problems += [f"part {pid}: claim {bal} != outstanding {out}" for pid, out, bal in rows if bal != out]
    rows = db.session.execute(
        text(
            "SELECT l.id, l.outstanding_principal, a.balance, "
            "(SELECT sum(p.outstanding_principal) FROM loan_parts p WHERE p.loan_id = l.id) FROM loans l "
            "JOIN accounts a ON a.code = 'loan:' || l.id || ':receivable:' || l.currency WHERE l.id = ANY(:ids)"
        ),
        {"ids": world["loan_ids"]},
    ).all()
    problems += [
        f"loan {lid}: outstanding {out}, receivable {bal}, parts {parts}"
        for lid, out, bal, parts in rows
        if not (out == bal == parts)
    ]
    return problems


def _installments(loan_ids: list[int], number: int) -> dict[int, tuple]:
    from marketplace.lending.models import Installment

    return {
        row[0]: row[1:]
        for row in db.session.execute(
            select(
                Installment.loan_id,
                Installment.status,
                Installment.principal + Installment.interest,
                Installment.paid_principal + Installment.paid_interest,
            ).where(Installment.loan_id.in_(loan_ids), Installment.number == number)
        ).all()
    }


def _fund_again(world: dict) -> int:
    """The full payers pay in installment 2 (deposits); the short ones add nothing."""
    from marketplace.db import transaction
    from marketplace.ledger import services as ledger
    from marketplace.ledger.batch import NewEntry, post_entries

    full = world["groups"]["full"]
    due = {lid: total for lid, (_, total, _) in _installments(full, 2).items()}
    borrower_of = dict(zip(world["loan_ids"], world["borrowers"], strict=True))
    with transaction():
        external = ledger.external_account("sandbox", CURRENCY).id
        wallet_ids = dict(
            db.session.execute(
                text("SELECT member_id, id FROM accounts WHERE kind = 'wallet' AND member_id = ANY(:ids)"),
                {"ids": [borrower_of[lid] for lid in full]},
            ).all()
        )
        post_entries(
            [
                NewEntry("deposit", [(external, due[lid]), (wallet_ids[borrower_of[lid]], -due[lid])], memo="bench")
                for lid in full
            ]
        )
    return sum(due.values())


def test_collect_due_of_10k_loans(bench_app):
    import multiprocessing

    from marketplace.clock import real_now
    from marketplace.ledger.queries import reconcile, trial_balance
    from marketplace.lending import repayments
    from marketplace.lending.models import Repayment
    from marketplace.operators.jobs import run_due

    global _APP
    _APP = bench_app
    moment = real_now()
    with bench_app.app_context():
        db.engine.dispose()
    t = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(1) as workers:
        world = workers.apply(_build_in_child, (SEED, moment))
    setup = time.perf_counter() - t
    groups = world["groups"]

    with bench_app.app_context():
        lenders_before = _wallets(world["lenders"])
        borrowers_before = _wallets(world["borrowers"])
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        profiler = None
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            profiler = cProfile.Profile()
        with _Meter() as meter:
            if profiler is not None:
                report = profiler.runcall(repayments.collect_due, moment)
            else:
                report = repayments.collect_due(moment)
        if profiler is not None:
            import pstats

            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(40)
            stats.sort_stats("tottime").print_stats(25)
        seconds = meter.seconds
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        db.session.remove()

        lenders_after = _wallets(world["lenders"])
        borrowers_after = _wallets(world["borrowers"])
        first = _installments(world["loan_ids"], 1)
        repaid = db.session.execute(
            select(func.count(Repayment.id), func.coalesce(func.sum(Repayment.amount), 0)).where(
                Repayment.kind == "collection"
            )
        ).one()
        problems = reconcile()
        balance = trial_balance()
        unsound = _check_sound(world)
        db.session.remove()

    due = len(first)
    expected = sum(first[lid][1] for lid in groups["full"]) + sum(first[lid][1] // 2 for lid in groups["half"])
    rate = due / seconds if seconds else float("inf")
    print()
    print(
        f"loan collection benchmark: {LOANS:,} loans x {PARTS} parts from {LENDERS} lenders over {TERM} months "
        f"(setup {setup:.1f} s in a child process: {world['entries']:,} opening entries, "
        f"{world['installment_rows'] + world['part_installment_rows']:,} schedule rows)"
    )
    print(f"  installments due:   {due:>10,}   (tables {'ANALYZEd' if ANALYZE else 'NOT analyzed'} after the setup)")
    print(
        f"  collected:          {report['loans']:>10,} loans, {report['collected']:,} minor units "
        f"(short {report['short']:,}, late {report['late']:,}, defaulted {report['defaulted']:,})"
    )
    print(f"  collect_due:        {seconds:10.3f} s   (target <= 60 s)   {rate:,.0f} installments/s")
    print(f"                      {meter.describe()}")
    print(f"  peak memory:        {rss_after / 1024:10.1f} MB (max RSS; {rss_before / 1024:.1f} MB before)")

    # Sound: the ledger, the schedules, the parts and the wallets agree with what was collected.
    assert problems == [], problems[:10]
    assert balance["balanced"], balance["totals"]
    assert unsound == [], unsound[:10]
    assert due == LOANS
    assert report["loans"] == LOANS - len(groups["empty"])
    assert report["short"] == len(groups["half"]) + len(groups["empty"])
    assert report["late"] == len(groups["half"]) + len(groups["empty"])
    assert report["collected"] == expected == repaid[1] and repaid[0] == report["loans"]
    for lid in groups["full"]:
        status, total, paid = first[lid]
        assert status == "paid" and paid == total, (lid, first[lid])
    for lid in groups["half"]:
        status, total, paid = first[lid]
        assert status == "late" and paid == total // 2, (lid, first[lid])
    for lid in groups["empty"]:
        assert first[lid][0] == "late" and first[lid][2] == 0, (lid, first[lid])
    gained = sum(lenders_after[m] - lenders_before[m] for m in lenders_before)
    spent = sum(borrowers_before[m] - borrowers_after[m] for m in borrowers_before)
    assert gained == spent == report["collected"], (gained, spent, report["collected"])
    assert all(balance == 0 for balance in borrowers_after.values())

    # Optional: the whole run-due on installment 2's due date, full payers paid in again.
    with bench_app.app_context():
        paid_in = _fund_again(world)
        db.session.remove()
        lenders_before = _wallets(world["lenders"])
        second = datetime.combine(world["dates"][1], datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
        with _Meter() as run_meter:
            run = run_due(second)
        db.session.remove()
        collected = run["jobs"]["collect_installments"]
        lenders_after = _wallets(world["lenders"])
        installments_2 = _installments(world["loan_ids"], 2)
        problems = reconcile()
        balance = trial_balance()
        unsound = _check_sound(world)
        db.session.remove()
    due_2 = LOANS + len(groups["half"]) + len(groups["empty"])  # installment 2 of all, 1 of the short ones again
    print(
        f"  run_due on {world['dates'][1]}: {run_meter.seconds:.3f} s for {due_2:,} installments due "
        f"({collected['loans']:,} loans collected, {collected['collected']:,} minor units, "
        f"short {collected['short']:,}, late {collected['late']:,}); jobs: {json.dumps(sorted(run['jobs']))}"
    )
    print(f"                      {run_meter.describe()}")
    assert problems == [], problems[:10]
    assert balance["balanced"], balance["totals"]
    assert unsound == [], unsound[:10]
    assert collected["loans"] == len(groups["full"]) and collected["collected"] == paid_in
    assert collected["short"] == len(groups["half"]) + len(groups["empty"])
    # Installment 2 of each short loan goes late; installment 1 of them is late already.
    assert collected["late"] == len(groups["half"]) + len(groups["empty"])
    assert sum(lenders_after[m] - lenders_before[m] for m in lenders_before) == paid_in
    for lid in groups["full"]:
        status, total, paid = installments_2[lid]
        assert status == "paid" and paid == total, (lid, installments_2[lid])
