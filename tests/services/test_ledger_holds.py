"""Reshaping holds (split one, merge several) and capturing holds into several accounts at once."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from marketplace.errors import InvalidState, LedgerInvariantError
from marketplace.extensions import db
from marketplace.ledger import services as ledger
from marketplace.ledger.holds import reshape_holds
from marketplace.ledger.models import Hold
from marketplace.ledger.settlement import settle_holds
from tests.helpers import assert_ledger_invariants, make_member, wallet_of


def test_split_keeps_the_wallet_held_and_resolves_the_old_hold_once():
    member = make_member(funds={"EUR": 10_000})
    hold = ledger.place_hold(ledger.wallet_account(member.id, "EUR"), 6_000, reference="offer")
    part, rest = reshape_holds([hold.id], [(2_500, "part"), (3_500, "offer")])
    db.session.commit()
    assert (part.amount, rest.amount) == (2_500, 3_500)
    assert db.session.get(Hold, hold.id).status == "released"
    assert wallet_of(member.id) == {"currency": "EUR", "balance": 10_000, "held": 6_000, "available": 4_000}
    with pytest.raises(InvalidState):
        reshape_holds([hold.id], [(1, "again")])
    assert_ledger_invariants()


def test_merge_and_give_back_the_rest():
    member = make_member(funds={"EUR": 10_000})
    wallet = ledger.wallet_account(member.id, "EUR")
    a = ledger.place_hold(wallet, 1_000)
    b = ledger.place_hold(wallet, 2_000)
    (merged,) = reshape_holds([a.id, b.id], [(2_400, "merged")])
    db.session.commit()
    assert merged.amount == 2_400
    assert wallet_of(member.id)["held"] == 2_400  # 600 returned to available
    assert db.session.execute(select(func.count(Hold.id)).where(Hold.status == "held")).scalar_one() == 1
    assert_ledger_invariants()


def test_reshape_refuses_more_than_it_frees_and_holds_of_two_wallets():
    ann, bob = make_member(funds={"EUR": 5_000}), make_member(funds={"EUR": 5_000})
    a = ledger.place_hold(ledger.wallet_account(ann.id, "EUR"), 1_000)
    b = ledger.place_hold(ledger.wallet_account(bob.id, "EUR"), 1_000)
    db.session.commit()
    with pytest.raises(LedgerInvariantError):
        reshape_holds([a.id], [(1_001, "too much")])
    with pytest.raises(LedgerInvariantError):
        reshape_holds([a.id, b.id], [(500, "mixed")])
    with pytest.raises(LedgerInvariantError):
        reshape_holds([a.id], [(0, "zero")])
    db.session.rollback()
    assert wallet_of(ann.id)["held"] == 1_000 and wallet_of(bob.id)["held"] == 1_000
    assert_ledger_invariants()


def test_settle_holds_captures_each_into_its_own_account():
    ann, bob = make_member(funds={"EUR": 5_000}), make_member(funds={"EUR": 5_000})
    first = ledger.ensure_account("loan:1:part:1:EUR", "EUR", "loan_part", ann.id)
    second = ledger.ensure_account("loan:1:part:2:EUR", "EUR", "loan_part", bob.id)
    a = ledger.place_hold(ledger.wallet_account(ann.id, "EUR"), 1_000)
    b = ledger.place_hold(ledger.wallet_account(bob.id, "EUR"), 2_000)
    settle_holds([(a.id, 1_000, first.id), (b.id, 1_500, second.id)], [], None, kind="loan_funding", memo="test")
    db.session.commit()
    db.session.expire_all()
    assert (first.balance, second.balance) == (1_000, 1_500)
    assert wallet_of(ann.id) == {"currency": "EUR", "balance": 4_000, "held": 0, "available": 4_000}
    assert wallet_of(bob.id) == {"currency": "EUR", "balance": 3_500, "held": 0, "available": 3_500}
    with pytest.raises(LedgerInvariantError):
        settle_holds([(a.id, 1)], [], None, kind="x", memo="no destination")
    assert_ledger_invariants()
