"""Matching locks wallets in one growing order, so it cannot deadlock with a repayment.

Every ledger writer locks account rows in ascending id order, in one
statement; a transaction that takes several such statements stays
deadlock-free only if each one locks nothing below what it already holds.
A match that completes a request disburses it at once, which captures the
holds of every part of the request — in the wallets of lenders who matched
it earlier, not only of this match. Those wallets were once left out of the
match's pre-lock and were locked after higher ones: the HTTP soak's
deadlocks between an offer and a repayment by the same borrower.

The check spies on every place the ledger locks accounts and asserts each
lock is of accounts already held or above all of them.
"""

from __future__ import annotations

import pytest

from marketplace.ledger import services as ledger_services
from marketplace.lending import market
from tests.helpers import assert_ledger_invariants, make_member


@pytest.fixture
def lock_log(monkeypatch):
    """The account ids each locking call took, in call order."""
    calls: list[list[int]] = []
    lock_balances, place_hold = ledger_services._lock_balances, ledger_services.place_hold

    def spy_lock(connection, account_ids):
        ids = sorted(set(account_ids))
        calls.append(ids)
        return lock_balances(connection, ids)

    def spy_hold(account, *args, **kwargs):
        calls.append([ledger_services.account_id_of(account)])
        return place_hold(account, *args, **kwargs)

    monkeypatch.setattr(ledger_services, "_lock_balances", spy_lock)
    monkeypatch.setattr(ledger_services, "place_hold", spy_hold)
    return calls


def assert_growing(calls: list[list[int]]) -> None:
    held: set[int] = set()
    for number, ids in enumerate(calls):
        new = [i for i in ids if i not in held]
        if held and new:
            assert min(new) > max(held), f"lock {number} takes {new} after holding up to {max(held)}: {calls}"
        held.update(ids)


def _setup_request_with_an_earlier_lender():
    early = make_member(funds={"EUR": 100_000})  # the lowest wallet id of all
    borrower = make_member(funds={"EUR": 1_000})
    request = market.create_request(
        borrower.id, amount=100_000, currency="EUR", term_months=12, max_rate_bps=1500, purpose="lock order"
    )
    market.create_offer(early.id, amount=40_000, currency="EUR", min_rate_bps=500, max_part=40_000)
    late = make_member(funds={"EUR": 100_000})
    return early, borrower, request, late


def test_an_offer_that_completes_a_request_locks_every_lenders_wallet_in_order(lock_log):
    _early, _borrower, request, late = _setup_request_with_an_earlier_lender()
    lock_log.clear()
    market.create_offer(late.id, amount=60_000, currency="EUR", min_rate_bps=600, max_part=60_000)
    assert market.get_request(request.id).status == "funded"
    assert lock_log, "the spy saw no lock"
    assert_growing(lock_log)
    assert_ledger_invariants()


def test_a_request_matched_by_offers_locks_in_order(lock_log):
    lenders = [make_member(funds={"EUR": 50_000}) for _ in range(3)]
    for number, lender in enumerate(lenders):
        market.create_offer(lender.id, amount=30_000, currency="EUR", min_rate_bps=500 + number, max_part=30_000)
    borrower = make_member()
    lock_log.clear()
    request = market.create_request(
        borrower.id, amount=80_000, currency="EUR", term_months=6, max_rate_bps=1500, purpose="three lenders"
    )
    assert market.get_request(request.id).status == "funded"
    assert_growing(lock_log)
    assert_ledger_invariants()


def test_the_check_would_see_a_lock_taken_below_what_is_held():
    with pytest.raises(AssertionError, match="after holding up to 9"):
        assert_growing([[5, 9], [9], [7]])
    assert_growing([[5, 9], [5], [10, 12]])


def test_a_cancelled_request_whose_parts_fund_another_locks_in_order(lock_log):
    """Cancelling returns the parts to their offers, which match again at once and may complete an older
    borrower's request: its borrower and its other lenders are pre-locked with the returning lenders."""
    other_borrower = make_member(funds={"EUR": 1_000})  # the lowest wallet ids
    other_lender = make_member(funds={"EUR": 100_000})
    lender = make_member(funds={"EUR": 100_000})
    borrower = make_member(funds={"EUR": 1_000})
    cancelled = market.create_request(
        borrower.id, amount=100_000, currency="EUR", term_months=12, max_rate_bps=1500, purpose="to cancel"
    )
    market.create_offer(lender.id, amount=50_000, currency="EUR", min_rate_bps=500, max_part=50_000)
    funded = market.create_request(
        other_borrower.id, amount=30_000, currency="EUR", term_months=6, max_rate_bps=1500, purpose="to fund"
    )
    market.create_offer(  # six-month loans only: it funds the second request, not the first
        other_lender.id, amount=10_000, currency="EUR", min_rate_bps=500, max_part=10_000, terms=[6]
    )
    assert market.get_request(funded.id).funded_amount == 10_000
    lock_log.clear()
    market.cancel_request(cancelled.id, borrower.id)
    assert market.get_request(funded.id).status == "funded"
    assert_growing(lock_log)
    assert_ledger_invariants()
