"""A pool's pledge totals, kept by the database's triggers (pools/ddl.py), on both databases.

Every test of the suite already ends with ``total_problems() == []`` (the
ledger check of tests/conftest.py); these drive the triggers through every
kind of write — the services, plain SQL behind their back, deletes, moves
between pools, a close — and check the totals after each, then that a
drift is reported and that the migration's backfill rebuilds them.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from marketplace.clock import now
from marketplace.extensions import db
from marketplace.ledger.models import Hold
from marketplace.pools import ddl
from marketplace.pools import services as pools
from marketplace.pools.models import COUNTED_PLEDGES, PLEDGE_STATUSES, TOTAL_SHARDS, Pledge, PoolPledgeTotal
from marketplace.pools.queries import pool_snapshot, total_problems
from tests.conftest import is_postgres_run
from tests.helpers import assert_ledger_invariants, make_member, token_for


def new_pool(organizer, min_volume=10):
    return pools.create_pool(
        organizer.id,
        title="Totals",
        description="",
        unit="unit",
        currency="EUR",
        min_volume=min_volume,
        deadline=now() + timedelta(days=1),
    ).id


def kept(pool_id: int) -> tuple[int, int]:
    """(volume, pledges) as the totals rows say."""
    volume, count = db.session.execute(
        select(
            func.coalesce(func.sum(PoolPledgeTotal.volume), 0), func.coalesce(func.sum(PoolPledgeTotal.pledges), 0)
        ).where(PoolPledgeTotal.pool_id == pool_id)
    ).one()
    return int(volume), int(count)


def pledged(pool_id: int) -> tuple[int, int]:
    """(volume, pledges) summed from the pledges themselves."""
    volume, count = db.session.execute(
        select(func.coalesce(func.sum(Pledge.quantity), 0), func.count(Pledge.id)).where(
            Pledge.pool_id == pool_id, Pledge.status.in_(COUNTED_PLEDGES)
        )
    ).one()
    return int(volume), int(count)


def assert_kept(pool_id: int, volume: int, count: int) -> None:
    db.session.expire_all()
    assert kept(pool_id) == pledged(pool_id) == (volume, count)
    assert total_problems() == []


def test_a_new_pool_has_its_rows_of_zeros(app):
    pool_id = new_pool(make_member())
    rows = db.session.execute(
        select(PoolPledgeTotal.shard, PoolPledgeTotal.volume, PoolPledgeTotal.pledges)
        .where(PoolPledgeTotal.pool_id == pool_id)
        .order_by(PoolPledgeTotal.shard)
    ).all()
    assert rows == [(shard, 0, 0) for shard in range(TOTAL_SHARDS)]


def test_pledges_withdrawals_and_a_close_keep_the_totals(app, client):
    organizer = make_member()
    pool_id = new_pool(organizer, min_volume=5)
    members = [make_member(funds={"EUR": 100_000}) for _ in range(3)]
    pledges = [
        pools.place_pledge(pool_id, member.id, quantity=quantity, max_unit_price=1_000)
        for member, quantity in zip(members * 2, (1, 2, 3, 4, 5, 6), strict=True)
    ]
    assert_kept(pool_id, 21, 6)
    pools.withdraw_pledge(pool_id, pledges[1].id, members[1].id)
    assert_kept(pool_id, 19, 5)
    shown = client.get(f"/api/v1/pools/{pool_id}", headers={"Authorization": f"Bearer {token_for(organizer)}"})
    assert (shown.json["volume"], shown.json["pledge_count"]) == (19, 5)
    assert pool_snapshot(pool_id).pool.volume == 19
    supplier = make_member("supplier")
    pools.place_bid(pool_id, supplier.id, tiers=[{"min_volume": 1, "unit_price": 900}], capacity=10)
    pools.close_pool(pool_id, organizer.id)  # capacity 10 of 19: some pledges filled, the others released
    statuses = set(db.session.execute(select(Pledge.status).where(Pledge.pool_id == pool_id)).scalars())
    assert statuses >= {"filled", "withdrawn"}
    assert_kept(pool_id, 19, 5)  # filled and released pledges still count, as before
    assert_ledger_invariants()


def test_a_close_writes_no_total_when_nothing_changes_what_pledges_count_for(app):
    if not is_postgres_run():
        pytest.skip("row versions (xmin) are PostgreSQL's")
    organizer = make_member()
    pool_id = new_pool(organizer, min_volume=1)
    for _ in range(4):
        pools.place_pledge(pool_id, make_member(funds={"EUR": 10_000}).id, quantity=1, max_unit_price=1_000)
    versions = text("SELECT shard, xmin::text FROM pool_pledge_totals WHERE pool_id = :pool ORDER BY shard")
    before = db.session.execute(versions, {"pool": pool_id}).all()
    pools.place_bid(pool_id, make_member("supplier").id, tiers=[{"min_volume": 1, "unit_price": 900}], capacity=9)
    pools.close_pool(pool_id, organizer.id)
    db.session.remove()
    assert db.session.execute(select(func.count()).where(Pledge.status == "filled")).scalar_one() == 4
    assert db.session.execute(versions, {"pool": pool_id}).all() == before
    assert_kept(pool_id, 4, 4)


def test_plain_sql_behind_the_services_back_is_counted_too(app):
    """Status, quantity, pool and id changes, and deletes, made without the services."""
    organizer = make_member()
    first, second = new_pool(organizer), new_pool(organizer)
    member = make_member(funds={"EUR": 100_000})
    a = pools.place_pledge(first, member.id, quantity=2, max_unit_price=100).id
    b = pools.place_pledge(first, member.id, quantity=3, max_unit_price=100).id

    def run(statement):
        db.session.execute(statement)
        db.session.commit()

    assert_kept(first, 5, 2)
    run(update(Pledge).where(Pledge.id == a).values(quantity=7))
    assert_kept(first, 10, 2)
    run(update(Pledge).where(Pledge.id == a).values(status="withdrawn"))
    assert_kept(first, 3, 1)
    run(update(Pledge).where(Pledge.id == a).values(quantity=1))  # not counted: changes nothing
    assert_kept(first, 3, 1)
    run(update(Pledge).where(Pledge.id == a).values(status="released"))
    assert_kept(first, 4, 2)
    run(update(Pledge).where(Pledge.id == b).values(status="filled"))  # counted to counted
    assert_kept(first, 4, 2)
    run(update(Pledge).where(Pledge.id == b).values(pool_id=second))
    assert_kept(first, 1, 1)
    assert_kept(second, 3, 1)
    run(update(Pledge).where(Pledge.id == b).values(id=b + 1_000_001))  # another shard of the same pool
    assert_kept(second, 3, 1)
    run(update(Pledge).where(Pledge.pool_id.in_([first, second])).values(quantity=Pledge.quantity + 1))
    assert_kept(first, 2, 1)
    assert_kept(second, 4, 1)
    run(delete(Pledge).where(Pledge.pool_id == second))
    assert_kept(second, 0, 0)
    assert_kept(first, 2, 1)


@pytest.mark.no_ledger_check
def test_a_pledge_whose_pool_has_no_totals_row_is_refused(app):
    pool_id = new_pool(make_member())
    member = make_member(funds={"EUR": 10_000})
    db.session.execute(delete(PoolPledgeTotal).where(PoolPledgeTotal.pool_id == pool_id))
    db.session.commit()
    with pytest.raises(DBAPIError, match="no pledge totals row"):
        pools.place_pledge(pool_id, member.id, quantity=1, max_unit_price=100)
    db.session.rollback()
    assert db.session.execute(select(func.count()).select_from(Pledge)).scalar_one() == 0
    assert f"pool {pool_id}: 0 totals rows, not {TOTAL_SHARDS}" in total_problems()


@pytest.mark.no_ledger_check
def test_a_drift_is_reported_and_the_ledger_check_fails(app):
    pool_id = new_pool(make_member())
    pools.place_pledge(pool_id, make_member(funds={"EUR": 10_000}).id, quantity=2, max_unit_price=100)
    db.session.execute(
        update(PoolPledgeTotal)
        .where(PoolPledgeTotal.pool_id == pool_id, PoolPledgeTotal.shard == 0)
        .values(volume=PoolPledgeTotal.volume + 5)
    )
    db.session.commit()
    assert total_problems() == [
        f"pool {pool_id}: kept totals 7 units in 1 pledges != its pledges' 2 units in 1 pledges"
    ]
    db.session.remove()
    result = app.test_cli_runner().invoke(args=["ledger-check"])
    assert result.exit_code == 1, result.output
    assert f"DIFFERENCE: pool {pool_id}: kept totals 7 units" in result.output


def test_the_migrations_backfill_rebuilds_lost_and_wrong_rows(app):
    organizer = make_member()
    pool_ids = [new_pool(organizer) for _ in range(3)]
    member = make_member(funds={"EUR": 1_000_000})
    for n in range(20):
        pools.place_pledge(pool_ids[n % 2], member.id, quantity=n + 1, max_unit_price=100)
    expected = {pool_id: pledged(pool_id) for pool_id in pool_ids}
    db.session.execute(delete(PoolPledgeTotal).where(PoolPledgeTotal.pool_id == pool_ids[0]))
    db.session.execute(update(PoolPledgeTotal).where(PoolPledgeTotal.pool_id == pool_ids[1]).values(volume=99))
    db.session.commit()
    assert len(total_problems()) >= 2
    connection = db.session.connection()
    ddl.backfill(lambda sql: connection.execute(text(sql)))  # as the migration's op.execute runs it
    db.session.commit()
    assert total_problems() == []
    assert {pool_id: kept(pool_id) for pool_id in pool_ids} == expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.sampled_from(["pledge", "withdraw", "quantity", "status", "move"]), st.integers(0, 50)),
        min_size=1,
        max_size=12,
    )
)
def test_any_sequence_of_writes_keeps_the_totals(app, steps):
    organizer = make_member()
    pool_ids = [new_pool(organizer), new_pool(organizer)]
    member = make_member(funds={"EUR": 10_000_000})
    made: list[int] = []
    for action, n in steps:
        if action == "pledge" or not made:
            made.append(pools.place_pledge(pool_ids[n % 2], member.id, quantity=n % 9 + 1, max_unit_price=100).id)
            continue
        pledge = db.session.get(Pledge, made[n % len(made)])
        if action == "withdraw":
            if pledge.status == "active" and db.session.get(Hold, pledge.hold_id).status == "held":
                pools.withdraw_pledge(pledge.pool_id, pledge.id, member.id)
        elif action == "quantity":
            db.session.execute(update(Pledge).where(Pledge.id == pledge.id).values(quantity=n % 7 + 1))
        elif action == "status":
            db.session.execute(update(Pledge).where(Pledge.id == pledge.id).values(status=PLEDGE_STATUSES[n % 4]))
        elif action == "move":
            db.session.execute(update(Pledge).where(Pledge.id == pledge.id).values(pool_id=pool_ids[n % 2]))
        db.session.commit()
        db.session.expire_all()
        assert total_problems() == []
    for pool_id in pool_ids:
        assert kept(pool_id) == pledged(pool_id)
    db.session.execute(text("DELETE FROM pledges"))  # each pledge takes its part with it
    db.session.commit()
    assert total_problems() == []


@pytest.mark.postgres
def test_concurrent_pledges_and_withdrawals_on_one_pool_add_up(app):
    """Pledges side by side (many land on the same totals row) and withdrawals: exact totals, no deadlock."""
    organizer = make_member()
    pool_id = new_pool(organizer)
    members = [make_member(funds={"EUR": 100_000}) for _ in range(12)]
    early = [pools.place_pledge(pool_id, m.id, quantity=1, max_unit_price=100).id for m in members[:6]]
    member_ids = [m.id for m in members]
    db.session.remove()
    barrier = threading.Barrier(24)
    errors: list[Exception] = []

    def worker(call):
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                call()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    calls = [
        (lambda m=m, q=q: pools.place_pledge(pool_id, m, quantity=q, max_unit_price=100))
        for m in member_ids
        for q in (2, 3)
    ]
    calls = calls[:18] + [
        (lambda p=p, m=m: pools.withdraw_pledge(pool_id, p, m)) for p, m in zip(early, member_ids[:6], strict=True)
    ]
    threads = [threading.Thread(target=worker, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a thread hung (deadlock?)"
    assert errors == []
    # 18 pledges of 2 and 3 (9 members x 5 units), the 6 early pledges of 1 all withdrawn
    assert_kept(pool_id, 45, 18)
    assert_ledger_invariants()
