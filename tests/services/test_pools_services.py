"""Pool services against the real database: rules, rollbacks, scheduler, presentation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace.clock import now
from marketplace.db import transaction
from marketplace.errors import (
    Forbidden,
    InsufficientFunds,
    InvalidState,
    NotFound,
    NotVerified,
    PoolNotOpen,
    ValidationFailed,
)
from marketplace.extensions import db
from marketplace.ledger.models import Account, Hold, JournalEntry
from marketplace.notifications.models import Notification
from marketplace.notifications.services import for_member
from marketplace.operators.models import AuditLog
from marketplace.operators.services import set_test_clock
from marketplace.pools import services as pools
from marketplace.pools.models import Bid, Pledge, Pool
from tests.helpers import assert_ledger_invariants, make_member, wallet_of


def new_pool(organizer, *, min_volume=10, hours=24, currency="EUR"):
    return pools.create_pool(
        organizer.id,
        title="Insulation",
        description="",
        unit="m2",
        currency=currency,
        min_volume=min_volume,
        deadline=now() + timedelta(hours=hours),
    )


def tiers(*pairs):
    return [{"min_volume": v, "unit_price": p} for v, p in pairs]


def snapshot():
    db.session.expire_all()
    models = (Pool, Pledge, Bid, Hold, JournalEntry, Notification, AuditLog)
    return {
        "counts": {m.__name__: db.session.execute(select(func.count()).select_from(m)).scalar_one() for m in models},
        "accounts": sorted(db.session.execute(select(Account.code, Account.balance, Account.held)).all()),
        "pledges": sorted(db.session.execute(select(Pledge.id, Pledge.status, Pledge.charged_amount)).all()),
        "pools": sorted(db.session.execute(select(Pool.id, Pool.status, Pool.winning_bid_id)).all()),
        "holds": sorted(db.session.execute(select(Hold.id, Hold.status, Hold.captured)).all()),
    }


# ---------------------------------------------------------------- who may do what


def test_create_pool_rules():
    member = make_member()
    operator = make_member("operator")
    with pytest.raises(NotVerified):
        new_pool(make_member(verified=False))
    with pytest.raises(Forbidden):
        new_pool(make_member("supplier"))
    with pytest.raises(ValidationFailed) as exc:
        new_pool(member, hours=-1)
    assert "deadline" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        new_pool(member, currency="JPY")
    assert "currency" in exc.value.errors
    assert new_pool(operator).organizer_id == operator.id
    assert db.session.execute(select(func.count(Pool.id))).scalar_one() == 1


def test_pledge_rules():
    organizer = make_member()
    supplier = make_member("supplier", funds={"EUR": 10_000})
    member = make_member(funds={"EUR": 1_000})
    pool = new_pool(organizer)
    with pytest.raises(Forbidden):
        pools.place_pledge(pool.id, supplier.id, quantity=1, max_unit_price=1)
    with pytest.raises(NotFound):
        pools.place_pledge(999_999, member.id, quantity=1, max_unit_price=1)
    with pytest.raises(ValidationFailed):
        pools.place_pledge(pool.id, member.id, quantity=10**6, max_unit_price=10**6 + 1)
    with pytest.raises(InsufficientFunds):
        pools.place_pledge(pool.id, member.id, quantity=11, max_unit_price=100)
    gbp = new_pool(organizer, currency="GBP")
    with pytest.raises(InsufficientFunds):
        pools.place_pledge(gbp.id, member.id, quantity=1, max_unit_price=1)
    first = pools.place_pledge(pool.id, member.id, quantity=4, max_unit_price=100)
    second = pools.place_pledge(pool.id, member.id, quantity=6, max_unit_price=100)
    assert (first.held_amount, second.held_amount) == (400, 600)
    assert wallet_of(member.id) == {"currency": "EUR", "balance": 1_000, "held": 1_000, "available": 0}
    with pytest.raises(InsufficientFunds):
        pools.place_pledge(pool.id, member.id, quantity=1, max_unit_price=1)
    assert pools.present_pool(pool)["pledge_count"] == 2


def test_bid_rules_and_visibility():
    organizer = make_member()
    operator = make_member("operator")
    s1, s2 = make_member("supplier"), make_member("supplier")
    member = make_member()
    pool = new_pool(organizer)
    with pytest.raises(Forbidden):
        pools.place_bid(pool.id, member.id, tiers=tiers((1, 10)), capacity=5)
    with pytest.raises(ValidationFailed) as exc:
        pools.place_bid(pool.id, s1.id, tiers=tiers((5, 10), (5, 9), (7, 11)), capacity=4)
    assert set(exc.value.errors) == {"tiers.1.min_volume", "tiers.2.unit_price", "capacity"}
    with pytest.raises(ValidationFailed) as exc:
        pools.place_bid(pool.id, s1.id, tiers=[], capacity=4)
    assert set(exc.value.errors) == {"tiers"}
    old = pools.place_bid(pool.id, s1.id, tiers=tiers((1, 10)), capacity=5).id
    new = pools.place_bid(pool.id, s1.id, tiers=tiers((1, 9)), capacity=5).id
    other = pools.place_bid(pool.id, s2.id, tiers=tiers((1, 8)), capacity=5).id
    assert db.session.get(Bid, old).status == "replaced"
    assert [b.id for b in pools.bids_for(pool.id, s1.id)] == [new]
    assert [b.id for b in pools.bids_for(pool.id, s2.id)] == [other]
    assert [b.id for b in pools.bids_for(pool.id, operator.id)] == [new, other]
    assert pools.bids_for(pool.id, member.id) == []
    assert pools.bids_for(pool.id, organizer.id) == []
    pools.close_pool(pool.id, organizer.id)
    assert [b.id for b in pools.bids_for(pool.id, member.id)] == [new, other]
    assert {b.status for b in pools.bids_for(pool.id, member.id)} == {"lost"}
    assert_ledger_invariants()


# ---------------------------------------------------------------- clearing and money


def test_fee_rounds_half_up():
    organizer = make_member()
    member = make_member(funds={"EUR": 1_000})
    supplier = make_member("supplier")
    pool = new_pool(organizer, min_volume=25)
    pools.place_pledge(pool.id, member.id, quantity=25, max_unit_price=10)
    pools.place_bid(pool.id, supplier.id, tiers=tiers((25, 10)), capacity=25)
    closed = pools.close_pool(pool.id, organizer.id)
    # 250 * 100 / 10000 = 2.5 -> 3 (half up; banker's rounding would give 2)
    assert (closed.award_total, closed.award_fee) == (250, 3)
    pools.confirm_delivery(pool.id, supplier.id)
    assert wallet_of(supplier.id)["balance"] == 247
    fees = db.session.execute(select(Account).where(Account.code == "platform:fees:EUR")).scalar_one()
    assert fees.balance == 3
    assert_ledger_invariants()


def test_fee_follows_pool_fee_bps(app, monkeypatch):
    monkeypatch.setitem(app.config, "POOL_FEE_BPS", 250)
    organizer = make_member()
    member = make_member(funds={"EUR": 1_000})
    supplier = make_member("supplier")
    pool = new_pool(organizer, min_volume=2)
    pools.place_pledge(pool.id, member.id, quantity=2, max_unit_price=10)
    pools.place_bid(pool.id, supplier.id, tiers=tiers((2, 10)), capacity=2)
    # 20 * 250 / 10000 = 0.5 -> 1
    assert pools.close_pool(pool.id, organizer.id).award_fee == 1
    pools.confirm_delivery(pool.id, supplier.id)
    assert wallet_of(supplier.id)["balance"] == 19
    assert_ledger_invariants()


def test_lowest_price_wins_then_larger_volume_then_earlier_bid():
    organizer = make_member()
    members = [make_member(funds={"EUR": 100_000}) for _ in range(3)]
    s1, s2, s3 = (make_member("supplier") for _ in range(3))
    pool = new_pool(organizer, min_volume=10)
    for m in members:
        pools.place_pledge(pool.id, m.id, quantity=10, max_unit_price=1_000)
    pools.place_bid(pool.id, s1.id, tiers=tiers((10, 500)), capacity=20)  # V=20 at 500
    second = pools.place_bid(pool.id, s2.id, tiers=tiers((10, 500)), capacity=30).id  # V=30 at 500
    pools.place_bid(pool.id, s3.id, tiers=tiers((10, 500)), capacity=30)  # same, but later
    closed = pools.close_pool(pool.id, organizer.id)
    assert (closed.winning_bid_id, closed.award_volume, closed.award_total) == (second, 30, 15_000)
    assert [wallet_of(m.id)["balance"] for m in members] == [95_000] * 3
    assert_ledger_invariants()


def test_pool_without_pledges_or_bids_fails_cleanly():
    organizer = make_member()
    supplier = make_member("supplier")
    empty = new_pool(organizer)
    assert pools.close_pool(empty.id, organizer.id).status == "failed"
    unpledged = new_pool(organizer)
    pools.place_bid(unpledged.id, supplier.id, tiers=tiers((1, 5)), capacity=10)
    assert pools.close_pool(unpledged.id, organizer.id).status == "failed"
    assert pools.bids_for(unpledged.id, organizer.id)[0].outcome["reason"] == "no_pledges"
    assert "bid_lost" in {n.kind for n in for_member(supplier.id)}
    assert db.session.execute(select(func.count(JournalEntry.id))).scalar_one() == 0
    assert_ledger_invariants()


def test_present_pool_best_price_respects_first_tier_and_capacity():
    organizer = make_member()
    member = make_member(funds={"EUR": 100_000})
    supplier = make_member("supplier")
    pool = new_pool(organizer, min_volume=10)
    pools.place_bid(pool.id, supplier.id, tiers=tiers((10, 500), (20, 400)), capacity=25)
    assert pools.present_pool(pool)["best_unit_price"] is None  # volume 0
    pools.place_pledge(pool.id, member.id, quantity=5, max_unit_price=600)
    assert pools.present_pool(pool)["best_unit_price"] is None  # below the first tier
    pools.place_pledge(pool.id, member.id, quantity=5, max_unit_price=600)
    assert pools.present_pool(pool)["best_unit_price"] == 500
    pools.place_pledge(pool.id, member.id, quantity=10, max_unit_price=600)
    assert pools.present_pool(pool)["best_unit_price"] == 400
    insight = pools.pool_insight(pool)
    assert (insight["progress_pct"], insight["units_to_min"]) == (100, 0)
    pools.place_pledge(pool.id, member.id, quantity=10, max_unit_price=600)
    assert pools.present_pool(pool)["best_unit_price"] is None  # above capacity
    assert pools.present_pool(pool)["volume"] == 30


# ---------------------------------------------------------------- scheduler


def test_scheduler_closes_only_after_the_deadline():
    operator = make_member("operator")
    organizer = make_member()
    member = make_member(funds={"EUR": 10_000})
    pool = new_pool(organizer, hours=1)
    later = new_pool(organizer, hours=5)
    pools.place_pledge(pool.id, member.id, quantity=20, max_unit_price=100)
    with pytest.raises(InvalidState):
        pools.close_pool(pool.id, None)
    assert pools.close_due_pools(now())["closed"] == 0
    set_test_clock(operator.id, now() + timedelta(hours=1))  # exactly the deadline: due
    with pytest.raises(PoolNotOpen):
        pools.place_pledge(pool.id, member.id, quantity=1, max_unit_price=1)
    with pytest.raises(PoolNotOpen):
        pools.withdraw_pledge(pool.id, 1, member.id)
    report = pools.close_due_pools(now())
    assert report == {"closed": 1, "awarded": 0, "failed": 1, "skipped": 0, "pool_ids": [pool.id]}
    assert db.session.get(Pool, pool.id).status == "failed"
    assert db.session.get(Pool, later.id).status == "open"
    assert wallet_of(member.id)["held"] == 0
    assert pools.close_due_pools(now())["closed"] == 0
    assert_ledger_invariants()


# ---------------------------------------------------------------- all or nothing


def test_close_rolls_back_entirely_when_settlement_fails(monkeypatch):
    organizer = make_member()
    members = [make_member(funds={"EUR": 10_000}) for _ in range(3)]
    supplier = make_member("supplier")
    pool = new_pool(organizer)
    for m in members:
        pools.place_pledge(pool.id, m.id, quantity=10, max_unit_price=300)
    pools.place_bid(pool.id, supplier.id, tiers=tiers((10, 200)), capacity=100)
    before = snapshot()

    import marketplace.ledger.settlement as settlement

    real_write = settlement._write_resolutions
    calls = {"n": 0}

    def failing_write(*args, **kwargs):  # noqa: ARG001
        # Fails after the holds were unheld and the capture entries posted.
        calls["n"] += 1
        raise RuntimeError("database went away mid-settlement")

    monkeypatch.setattr(settlement, "_write_resolutions", failing_write)
    with pytest.raises(RuntimeError):
        pools.close_pool(pool.id, organizer.id)
    assert calls["n"] == 1
    assert snapshot() == before
    monkeypatch.setattr(settlement, "_write_resolutions", real_write)
    assert pools.close_pool(pool.id, organizer.id).status == "awarded"
    assert [wallet_of(m.id)["balance"] for m in members] == [8_000] * 3
    assert_ledger_invariants()


def test_pledge_rolls_back_its_hold_when_the_pledge_cannot_be_stored():
    organizer = make_member()
    member = make_member(funds={"EUR": 10_000})
    pool = new_pool(organizer)
    before = snapshot()
    # A negative quantity and price slip past the product check; the hold (1 cent) is
    # placed, then the database refuses the pledge: the hold must not survive.
    with pytest.raises(Exception):  # noqa: B017 - IntegrityError, whatever the driver calls it
        pools.place_pledge(pool.id, member.id, quantity=-1, max_unit_price=-1)
    db.session.rollback()
    assert snapshot() == before
    assert wallet_of(member.id)["held"] == 0


def test_a_placed_pledge_is_the_session_s_own_row_even_when_a_rolled_back_one_had_its_id():
    organizer = make_member()
    member = make_member(funds={"EUR": 10_000})
    pool = new_pool(organizer)
    with pytest.raises(RuntimeError):
        with transaction():
            lost = pools.place_pledge(pool.id, member.id, quantity=2, max_unit_price=300)
            raise RuntimeError("the caller failed after the pledge was stored")
    assert wallet_of(member.id)["held"] == 0
    # The next pledge may reuse the rolled-back one's id (SQLite does): it must be its own, current row.
    pledge = pools.place_pledge(pool.id, member.id, quantity=3, max_unit_price=200)
    assert pledge is not lost
    assert db.session.get(Pledge, pledge.id) is pledge
    stored = db.session.execute(
        select(Pledge.quantity, Pledge.max_unit_price, Pledge.held_amount, Pledge.status, Pledge.created_at)
        .where(Pledge.id == pledge.id)
        .execution_options(populate_existing=False)
    ).one()
    assert tuple(stored) == (3, 200, 600, "active", pledge.created_at)
    assert (pledge.pool.id, pledge.funding, pledge.charged_amount) == (pool.id, "wallet", 0)
    hold = db.session.get(Hold, pledge.hold_id)
    assert (hold.status, hold.amount, hold.account.member_id) == ("held", 600, member.id)
    assert wallet_of(member.id) == {"currency": "EUR", "balance": 10_000, "held": 600, "available": 9_400}
    assert pools.withdraw_pledge(pool.id, pledge.id, member.id).status == "withdrawn"
    assert wallet_of(member.id)["held"] == 0
    assert_ledger_invariants()


def test_a_pledge_from_a_member_without_a_wallet_in_the_pool_s_currency_is_insufficient_funds():
    organizer = make_member()
    member = make_member(funds={"EUR": 10_000})
    pool = new_pool(organizer, currency="GBP")
    assert db.session.execute(select(Account).where(Account.code == f"member:{member.id}:wallet:GBP")).first() is None
    with pytest.raises(InsufficientFunds) as refused:
        pools.place_pledge(pool.id, member.id, quantity=1, max_unit_price=1)
    assert "available balance is" in str(refused.value.errors["amount"][0])
    assert db.session.execute(select(func.count(Pledge.id))).scalar_one() == 0
    assert_ledger_invariants()


def test_delivery_rolls_back_when_a_later_step_fails(monkeypatch):
    organizer = make_member()
    member = make_member(funds={"EUR": 10_000})
    supplier = make_member("supplier")
    pool = new_pool(organizer)
    pools.place_pledge(pool.id, member.id, quantity=10, max_unit_price=300)
    pools.place_bid(pool.id, supplier.id, tiers=tiers((10, 200)), capacity=100)
    pools.close_pool(pool.id, organizer.id)
    before = snapshot()

    def broken_notify(*args, **kwargs):
        raise RuntimeError("notification store down")

    monkeypatch.setattr(pools, "notify", broken_notify)
    with pytest.raises(RuntimeError):
        pools.confirm_delivery(pool.id, supplier.id)
    assert snapshot() == before
    assert wallet_of(supplier.id)["balance"] == 0
    monkeypatch.undo()
    assert pools.confirm_delivery(pool.id, supplier.id).status == "delivered"
    assert wallet_of(supplier.id)["balance"] == 2_000 - 20
    with pytest.raises(InvalidState):
        pools.confirm_delivery(pool.id, supplier.id)
    assert_ledger_invariants()


def test_cancel_rolls_back_when_the_audit_fails(monkeypatch):
    organizer = make_member()
    member = make_member(funds={"EUR": 10_000})
    pool = new_pool(organizer)
    pools.place_pledge(pool.id, member.id, quantity=10, max_unit_price=300)
    before = snapshot()

    def broken_audit(*args, **kwargs):
        raise RuntimeError("audit log full")

    monkeypatch.setattr(pools, "record_audit", broken_audit)
    with pytest.raises(RuntimeError):
        pools.cancel_pool(pool.id, organizer.id)
    assert snapshot() == before
    assert wallet_of(member.id)["held"] == 3_000


# ---------------------------------------------------------------- withdraw, cancel, audit


def test_withdraw_and_cancel_rules():
    operator = make_member("operator")
    organizer = make_member()
    member = make_member(funds={"EUR": 10_000})
    other = make_member(funds={"EUR": 10_000})
    pool = new_pool(organizer)
    pledge = pools.place_pledge(pool.id, member.id, quantity=10, max_unit_price=300)
    with pytest.raises(Forbidden):
        pools.withdraw_pledge(pool.id, pledge.id, other.id)
    with pytest.raises(NotFound):
        pools.withdraw_pledge(pool.id, 999_999, member.id)
    assert pools.withdraw_pledge(pool.id, pledge.id, member.id).status == "withdrawn"
    with pytest.raises(InvalidState):
        pools.withdraw_pledge(pool.id, pledge.id, member.id)
    with pytest.raises(Forbidden):
        pools.cancel_pool(pool.id, member.id)
    pools.place_pledge(pool.id, other.id, quantity=10, max_unit_price=300)
    assert pools.cancel_pool(pool.id, operator.id).status == "cancelled"
    assert wallet_of(other.id) == {"currency": "EUR", "balance": 10_000, "held": 0, "available": 10_000}
    audit = db.session.execute(select(AuditLog.action, AuditLog.actor_id)).all()
    assert ("pool.cancel", operator.id) in audit
    failed = new_pool(organizer)
    pools.close_pool(failed.id, operator.id)
    assert ("pool.close", operator.id) in db.session.execute(select(AuditLog.action, AuditLog.actor_id)).all()
    with pytest.raises(InvalidState):
        pools.cancel_pool(failed.id, operator.id)
    assert_ledger_invariants()


def test_close_notifications_explain_each_fate():
    organizer = make_member()
    rich = make_member(funds={"EUR": 100_000})
    cheap = make_member(funds={"EUR": 100_000})
    late = make_member(funds={"EUR": 100_000})
    supplier = make_member("supplier")
    pool = new_pool(organizer, min_volume=10)
    pools.place_pledge(pool.id, rich.id, quantity=10, max_unit_price=500)
    pools.place_pledge(pool.id, late.id, quantity=10, max_unit_price=500)
    pools.place_pledge(pool.id, cheap.id, quantity=10, max_unit_price=100)
    pools.place_bid(pool.id, supplier.id, tiers=tiers((10, 400)), capacity=15)
    closed = pools.close_pool(pool.id, organizer.id)
    assert (closed.award_volume, closed.award_unit_price) == (10, 400)
    [awarded] = for_member(rich.id)
    [capacity] = for_member(late.id)
    [price] = for_member(cheap.id)
    assert awarded.kind == "pool_awarded" and "40.00 EUR" in awarded.message
    assert capacity.kind == "pool_released" and "capacity" in capacity.message
    assert price.kind == "pool_released" and "above your maximum price" in price.message
    assert [wallet_of(m.id)["balance"] for m in (rich, late, cheap)] == [96_000, 100_000, 100_000]
    assert_ledger_invariants()
