"""Lending under real concurrency: threads against PostgreSQL.

Offers arriving together for one request never over-fund it; requests
arriving together never take more from one offer than it holds; repayments
racing the scheduler's collection never pay an installment twice.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.ledger.models import Hold
from marketplace.lending import market, repayments
from marketplace.lending.models import LendingOffer, Loan, LoanPart, LoanRequest
from tests.helpers import assert_ledger_invariants, make_member, wallet_of
from tests.services.test_pools_postgres import assert_only, run_concurrently

pytestmark = pytest.mark.postgres


def test_concurrent_offers_never_over_fund_a_request(app):
    borrower = make_member()
    request = market.create_request(
        borrower.id, amount=100_000, currency="EUR", term_months=12, max_rate_bps=1500, purpose="race"
    )
    lender_ids = [make_member(funds={"EUR": 100_000}).id for _ in range(12)]
    calls = [
        (
            lambda lender_id=lender_id: (
                market.create_offer(
                    lender_id, amount=30_000, currency="EUR", min_rate_bps=500 + lender_id % 7, max_part=30_000
                ).id
            )
        )
        for lender_id in lender_ids
    ]
    results = run_concurrently(app, calls)
    assert_only(results)
    db.session.expire_all()
    request = db.session.get(LoanRequest, request.id)
    assert request.status == "funded" and request.funded_amount == 100_000
    parts = db.session.execute(select(LoanPart).where(LoanPart.request_id == request.id)).scalars().all()
    assert sum(p.amount for p in parts if p.status == "active") == 100_000
    loan = db.session.get(Loan, request.loan_id)
    assert loan.amount == 100_000 and sum(p.amount for p in loan.parts) == 100_000
    # Every offer's money is either lent or still held for it.
    for offer in db.session.execute(select(LendingOffer)).scalars():
        lent = sum(p.amount for p in parts if p.offer_id == offer.id)
        assert lent + offer.remaining == offer.amount
        assert wallet_of(offer.lender_id)["held"] == offer.remaining
    assert_ledger_invariants()


def test_concurrent_requests_never_take_more_than_an_offer_holds(app):
    lender = make_member(funds={"EUR": 200_000})
    offer = market.create_offer(lender.id, amount=150_000, currency="EUR", min_rate_bps=700, max_part=50_000)
    borrower_ids = [make_member().id for _ in range(8)]
    calls = [
        (
            lambda b=b: (
                market.create_request(
                    b, amount=50_000, currency="EUR", term_months=6, max_rate_bps=900, purpose="race"
                ).status
            )
        )
        for b in borrower_ids
    ]
    results = run_concurrently(app, calls)
    assert_only(results)
    statuses = [value for _, value in results]
    assert statuses.count("funded") == 3 and statuses.count("open") == 5
    db.session.expire_all()
    offer = db.session.get(LendingOffer, offer.id)
    assert offer.remaining == 0 and offer.status == "filled"
    assert wallet_of(lender.id) == {"currency": "EUR", "balance": 50_000, "held": 0, "available": 50_000}
    assert db.session.execute(select(func.count(Hold.id)).where(Hold.status == "held")).scalar_one() == 0
    assert_ledger_invariants()


def test_repayments_racing_collection_pay_each_cent_once(app):
    from datetime import timedelta

    from marketplace.clock import now
    from marketplace.operators.jobs import run_due
    from tests.helpers import set_clock

    lender = make_member(funds={"EUR": 500_000})
    market.create_offer(lender.id, amount=400_000, currency="EUR", min_rate_bps=900, max_part=400_000)
    borrower = make_member(funds={"EUR": 100_000})
    request = market.create_request(
        borrower.id, amount=120_000, currency="EUR", term_months=12, max_rate_bps=1000, purpose="race"
    )
    loan_id, borrower_id = request.loan_id, borrower.id
    first_total = db.session.get(Loan, loan_id).installments[0].total
    set_clock(now() + timedelta(days=40))
    calls = [lambda: run_due()["jobs"]["collect_installments"]["collected"]] + [
        (lambda: repayments.repay(loan_id, borrower_id, 1_000).amount) for _ in range(6)
    ]
    results = run_concurrently(app, calls)
    assert_only(results)
    db.session.expire_all()
    loan = db.session.get(Loan, loan_id)
    paid = sum(row.paid for row in loan.installments)
    collected = results[0][1]
    assert paid == collected + 6 * 1_000
    assert loan.installments[0].status == "paid" and loan.installments[0].paid == first_total
    assert wallet_of(lender.id)["balance"] == 500_000 - 120_000 + paid
    assert_ledger_invariants()


def test_offers_and_requests_arriving_together_never_deadlock_or_over_fund(app):
    lender_ids = [make_member(funds={"EUR": 300_000}).id for _ in range(4)]
    for lender_id in lender_ids:  # a standing offer each, so requests reserve from these wallets
        market.create_offer(lender_id, amount=40_000, currency="EUR", min_rate_bps=600, max_part=20_000)
    borrower_ids = [make_member().id for _ in range(6)]
    calls = [
        (
            lambda lender_id=lender_id: (
                market.create_offer(lender_id, amount=50_000, currency="EUR", min_rate_bps=700, max_part=25_000).status
            )
        )
        for lender_id in lender_ids
    ] + [
        (
            lambda b=b: (
                market.create_request(
                    b, amount=60_000, currency="EUR", term_months=12, max_rate_bps=1200, purpose="storm"
                ).status
            )
        )
        for b in borrower_ids
    ]
    results = run_concurrently(app, calls)
    assert_only(results)
    db.session.expire_all()
    requests = db.session.execute(select(LoanRequest)).scalars().all()
    for request in requests:
        reserved = sum(
            p.amount
            for p in db.session.execute(
                select(LoanPart).where(LoanPart.request_id == request.id, LoanPart.status != "returned")
            ).scalars()
        )
        assert reserved == request.funded_amount <= request.amount
        assert (request.status == "funded") == (request.funded_amount == request.amount)
    for offer in db.session.execute(select(LendingOffer)).scalars():
        lent = sum(
            p.amount
            for p in db.session.execute(
                select(LoanPart).where(LoanPart.offer_id == offer.id, LoanPart.status != "returned")
            ).scalars()
        )
        assert lent + offer.remaining == offer.amount
    assert_ledger_invariants()


def test_two_run_dues_at_once_never_do_anything_twice(app):
    """Cron on two hosts: one run holds the advisory lock, the other does nothing."""
    import threading
    from datetime import timedelta

    from sqlalchemy import text

    from marketplace.clock import now
    from marketplace.operators import jobs
    from tests.helpers import set_clock

    lender = make_member(funds={"EUR": 500_000})
    market.create_offer(lender.id, amount=400_000, currency="EUR", min_rate_bps=900, max_part=400_000)
    borrower = make_member(funds={"EUR": 100_000})
    loan_id = market.create_request(
        borrower.id, amount=120_000, currency="EUR", term_months=12, max_rate_bps=1000, purpose="cron"
    ).loan_id
    set_clock(now() + timedelta(days=40))
    entered = threading.Event()
    release = threading.Event()

    def slow_job(moment):  # keeps the first run inside the lock until the second has tried
        entered.set()
        release.wait(timeout=30)
        return {}

    jobs._JOBS.insert(0, ("test_slow", slow_job))
    try:
        results: list = [None, None]

        def first():
            with app.app_context():
                try:
                    results[0] = jobs.run_due()
                finally:
                    db.session.remove()

        thread = threading.Thread(target=first)
        thread.start()
        assert entered.wait(timeout=30)
        with app.app_context():
            results[1] = jobs.run_due()
            db.session.remove()
        release.set()
        thread.join(timeout=60)
    finally:
        jobs._JOBS.remove(("test_slow", slow_job))
    assert results[1]["skipped"] and results[1]["jobs"] == {}
    assert results[0]["jobs"]["collect_installments"]["loans"] == 1
    db.session.expire_all()
    loan = db.session.get(Loan, loan_id)
    assert loan.installments[0].status == "paid" and loan.installments[1].paid == 0
    with db.engine.connect() as connection:  # the lock was given back
        assert connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": jobs.LOCK_KEY}).scalar()
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": jobs.LOCK_KEY})
    assert_ledger_invariants()
