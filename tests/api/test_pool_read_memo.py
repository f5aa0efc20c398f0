"""GET /api/v1/pools/{id} serves a memoized body (pools/api.py pool_body): it must always be the body
the PoolOut schema makes of the pool as it is now, byte for byte, for every change to the pool.

Runs on SQLite and (with TEST_DATABASE_URL) on PostgreSQL, where the reads are plain prepared
statements in autocommit (marketplace/reads.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import current_app

from marketplace.accounts import services as accounts
from marketplace.clock import now
from marketplace.extensions import db
from marketplace.memo import Memo
from marketplace.pools import api as pools_api
from marketplace.pools import services as pools
from marketplace.pools.models import Pool
from marketplace.pools.schemas import PoolOut
from tests.helpers import assert_error, make_member, token_for


def schema_body(pool_id: int) -> bytes:
    """What ``@bp.response(200, PoolOut)`` makes of the pool, through the ORM (services.present_pool)."""
    db.session.expire_all()
    pool = db.session.get(Pool, pool_id)
    return current_app.json.response(PoolOut().dump(pools.present_pool(pool))).get_data()


def fetch(api, token, pool_id):
    db.session.remove()  # as a real request starts: no session yet (the autocommit path on PostgreSQL)
    response = api.get(f"/api/v1/pools/{pool_id}", token=token)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    return response.get_data()


def assert_current(api, token, pool_id):
    body = fetch(api, token, pool_id)
    assert body == schema_body(pool_id)
    assert fetch(api, token, pool_id) == body  # the memoized answer, the same bytes
    return body


class Ids:
    """An id that outlives the session (``.id``), as the requests below start from no session."""

    def __init__(self, id_):
        self.id = id_


def make_pool(organizer_id: int, **overrides) -> int:
    """A new open pool's id (the pool pages' memo tests use it too)."""
    values = dict(
        title="Heat pumps for the street",
        description="Bulk order",
        unit="pump",
        currency="EUR",
        min_volume=10,
        deadline=now() + timedelta(days=2),
    )
    values.update(overrides)
    return pools.create_pool(organizer_id, **values).id


def test_the_body_follows_every_change_to_the_pool(api):
    organizer = make_member(name="Olga Organizer")
    alice = make_member(funds={"EUR": 1_000_000})
    bob = make_member(funds={"EUR": 1_000_000})
    supplier = make_member("supplier")
    other_supplier = make_member("supplier")
    token = token_for(organizer)
    pool = Ids(make_pool(organizer.id))
    organizer, alice, bob, supplier, other_supplier = (
        Ids(m.id) for m in (organizer, alice, bob, supplier, other_supplier)
    )
    seen = [assert_current(api, token, pool.id)]

    first = pools.place_pledge(pool.id, alice.id, quantity=4, max_unit_price=9_000).id
    seen.append(assert_current(api, token, pool.id))
    second = pools.place_pledge(pool.id, bob.id, quantity=8, max_unit_price=8_000).id
    seen.append(assert_current(api, token, pool.id))
    pools.withdraw_pledge(pool.id, second, bob.id)
    seen.append(assert_current(api, token, pool.id))
    pools.place_pledge(pool.id, bob.id, quantity=7, max_unit_price=8_500)
    seen.append(assert_current(api, token, pool.id))
    pools.place_bid(pool.id, supplier.id, tiers=[{"min_volume": 5, "unit_price": 8_000}], capacity=100)
    seen.append(assert_current(api, token, pool.id))
    pools.place_bid(  # replaces the supplier's bid
        pool.id,
        supplier.id,
        tiers=[{"min_volume": 5, "unit_price": 7_900}, {"min_volume": 10, "unit_price": 7_000}],
        capacity=100,
    )
    seen.append(assert_current(api, token, pool.id))
    pools.place_bid(pool.id, other_supplier.id, tiers=[{"min_volume": 1, "unit_price": 8_400}], capacity=50)
    seen.append(assert_current(api, token, pool.id))
    pools.close_pool(pool.id, organizer.id)
    seen.append(assert_current(api, token, pool.id))
    changed = [later != earlier for earlier, later in zip(seen, seen[1:], strict=False)]
    assert changed[:6] == [True] * 6 and changed[-1], changed  # pledges, withdrawal, bids, close: at once
    assert first


def test_each_pool_has_its_own_body_and_the_memo_stays_bounded(api, monkeypatch):
    monkeypatch.setattr(pools_api, "_POOL_BODIES", Memo(2))
    organizer = make_member()
    token = token_for(organizer)
    made = [make_pool(organizer.id, title=f"Pool number {n}") for n in range(4)]
    for _ in range(2):
        for pool_id in made:
            assert fetch(api, token, pool_id) == schema_body(pool_id)
    assert len(pools_api._POOL_BODIES) == 2


def test_unknown_pool_and_bad_tokens_answer_as_before(api):
    organizer = make_member()
    token = token_for(organizer)
    pool_id = make_pool(organizer.id)
    fetch(api, token, pool_id)
    assert_error(api.get("/api/v1/pools/999999", token=token), 404, "not_found")
    assert_error(api.get(f"/api/v1/pools/{pool_id}"), 401)
    assert_error(api.get(f"/api/v1/pools/{pool_id}", token="mkt_not-a-token"), 401)
    assert_error(api.get("/api/v1/pools/999999"), 401)  # the token first, then the pool


def test_a_revoked_token_is_refused_at_once(api):
    organizer = make_member()
    token = token_for(organizer)
    organizer_id = organizer.id
    pool_id = make_pool(organizer.id)
    fetch(api, token, pool_id)
    row = accounts.list_tokens(organizer_id)[0]
    accounts.revoke_token(organizer_id, row.id)
    db.session.remove()
    assert_error(api.get(f"/api/v1/pools/{pool_id}", token=token), 401)


@pytest.mark.postgres
def test_the_autocommit_read_leaves_pooled_connections_transactional(api):
    organizer = make_member()
    token = token_for(organizer)
    pool_id = make_pool(organizer.id)
    for _ in range(3):
        fetch(api, token, pool_id)
    with db.engine.connect() as connection:
        assert connection.connection.dbapi_connection.autocommit is False
    # and the request's own session still works in a transaction of its own afterwards
    alice = make_member(funds={"EUR": 100_000})
    pools.place_pledge(pool_id, alice.id, quantity=1, max_unit_price=1_000)
    assert fetch(api, token, pool_id) == schema_body(pool_id)
