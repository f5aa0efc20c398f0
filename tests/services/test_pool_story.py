"""The whole buying-pool story through the services, with exact balances."""

from datetime import timedelta

import pytest

from marketplace.clock import now
from marketplace.conversation import services as conversation
from marketplace.errors import AlreadyExists, Forbidden, InsufficientFunds, InvalidState, PoolNotOpen
from marketplace.extensions import db
from marketplace.ledger.queries import trial_balance
from marketplace.ledger.services import fees_code
from marketplace.notifications.services import for_member
from marketplace.pools import services as pools
from tests.helpers import assert_ledger_invariants, make_member, wallet_of


def _pool(organizer, min_volume=100, hours=24):
    return pools.create_pool(
        organizer.id,
        title="Solar panels for the community hall",
        description="Bulk order",
        unit="panel",
        currency="EUR",
        min_volume=min_volume,
        deadline=now() + timedelta(hours=hours),
    )


def test_design_worked_example_from_pledges_to_reviews():
    organizer = make_member()
    a = make_member(funds={"EUR": 100_000})
    b = make_member(funds={"EUR": 100_000})
    c = make_member(funds={"EUR": 100_000})
    d = make_member(funds={"EUR": 100_000})
    x = make_member("supplier")
    y = make_member("supplier")
    pool = _pool(organizer)
    pa = pools.place_pledge(pool.id, a.id, quantity=50, max_unit_price=900)
    pb = pools.place_pledge(pool.id, b.id, quantity=40, max_unit_price=800)
    pc = pools.place_pledge(pool.id, c.id, quantity=30, max_unit_price=750)
    pd = pools.place_pledge(pool.id, d.id, quantity=50, max_unit_price=600)
    assert wallet_of(a.id) == {"currency": "EUR", "balance": 100_000, "held": 45_000, "available": 55_000}
    pools.place_bid(
        pool.id,
        x.id,
        tiers=[
            {"min_volume": 50, "unit_price": 900},
            {"min_volume": 100, "unit_price": 800},
            {"min_volume": 150, "unit_price": 700},
        ],
        capacity=500,
    )
    bid_y = pools.place_bid(pool.id, y.id, tiers=[{"min_volume": 100, "unit_price": 750}], capacity=200)

    closed = pools.close_pool(pool.id, organizer.id)
    assert closed.status == "awarded"
    assert closed.award == {
        "bid_id": bid_y.id,
        "supplier_id": y.id,
        "unit_price": 750,
        "volume": 120,
        "total": 90_000,
        "fee": 900,
    }
    for pledge, status, charged in [
        (pa, "filled", 37_500),
        (pb, "filled", 30_000),
        (pc, "filled", 22_500),
        (pd, "released", 0),
    ]:
        db.session.refresh(pledge)
        assert (pledge.status, pledge.charged_amount) == (status, charged)
    assert wallet_of(a.id) == {"currency": "EUR", "balance": 62_500, "held": 0, "available": 62_500}
    assert wallet_of(d.id) == {"currency": "EUR", "balance": 100_000, "held": 0, "available": 100_000}
    with pytest.raises(PoolNotOpen):
        pools.close_pool(pool.id, organizer.id)
    with pytest.raises(InvalidState):
        conversation.add_review(pool.id, a.id, 5, "too early")

    with pytest.raises(Forbidden):
        pools.confirm_delivery(pool.id, x.id)
    pools.confirm_delivery(pool.id, y.id)
    assert wallet_of(y.id)["balance"] == 89_100
    tb = {row["code"]: row for row in trial_balance()["accounts"]}
    assert tb[fees_code("EUR")]["balance"] == 900
    assert tb[f"pool:{pool.id}:escrow:EUR"]["balance"] == 0

    conversation.add_review(pool.id, a.id, 5, "Great panels")
    with pytest.raises(AlreadyExists):
        conversation.add_review(pool.id, a.id, 4, "again")
    with pytest.raises(Forbidden):
        conversation.add_review(pool.id, d.id, 1, "I was released")
    profile = conversation.supplier_profile(y.id)
    assert (profile["rating_count"], profile["rating_average"]) == (1, "5.00")
    kinds = {n.kind for n in for_member(d.id)}
    assert "pool_released" in kinds
    assert {n.kind for n in for_member(y.id)} >= {"bid_won", "payout"}
    assert {n.kind for n in for_member(x.id)} == {"bid_lost"}
    assert_ledger_invariants()


def test_pool_below_min_volume_fails_and_releases_everything():
    organizer = make_member()
    a = make_member(funds={"EUR": 10_000})
    s = make_member("supplier")
    pool = _pool(organizer)
    pools.place_pledge(pool.id, a.id, quantity=10, max_unit_price=500)
    pools.place_bid(pool.id, s.id, tiers=[{"min_volume": 1, "unit_price": 100}], capacity=1000)
    closed = pools.close_pool(pool.id, organizer.id)
    assert closed.status == "failed" and closed.award is None
    assert wallet_of(a.id) == {"currency": "EUR", "balance": 10_000, "held": 0, "available": 10_000}
    assert_ledger_invariants()


def test_withdraw_cancel_and_insufficient_funds():
    organizer = make_member()
    a = make_member(funds={"EUR": 10_000})
    pool = _pool(organizer)
    pledge = pools.place_pledge(pool.id, a.id, quantity=10, max_unit_price=500)
    with pytest.raises(InsufficientFunds):
        pools.place_pledge(pool.id, a.id, quantity=10, max_unit_price=501)
    pools.withdraw_pledge(pool.id, pledge.id, a.id)
    assert wallet_of(a.id)["held"] == 0
    pools.place_pledge(pool.id, a.id, quantity=20, max_unit_price=500)
    assert wallet_of(a.id)["available"] == 0
    pools.cancel_pool(pool.id, organizer.id)
    assert wallet_of(a.id) == {"currency": "EUR", "balance": 10_000, "held": 0, "available": 10_000}
    with pytest.raises(PoolNotOpen):
        pools.place_pledge(pool.id, a.id, quantity=1, max_unit_price=1)
    assert_ledger_invariants()
