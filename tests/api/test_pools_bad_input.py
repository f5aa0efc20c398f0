"""Bad input to the pools API: always a 4xx with the API.md error body, never a 5xx, never a write."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace.clock import now
from marketplace.extensions import db
from marketplace.ledger.models import Hold, IdempotencyRecord, JournalEntry, Posting
from marketplace.notifications.models import Notification
from marketplace.pools.models import Bid, BidTier, Pledge, Pool
from tests.helpers import assert_error, make_member, token_for, wallet_of

COUNTED = (Pool, Pledge, Bid, BidTier, Hold, JournalEntry, Posting, IdempotencyRecord, Notification)


def counts() -> dict[str, int]:
    db.session.expire_all()
    return {m.__name__: db.session.execute(select(func.count()).select_from(m)).scalar_one() for m in COUNTED}


def iso(moment) -> str:
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def pool_body(**overrides) -> dict:
    body = {
        "title": "Cargo bikes",
        "description": "",
        "unit": "bike",
        "currency": "EUR",
        "min_volume": 10,
        "deadline": iso(now() + timedelta(days=3)),
    }
    body.update(overrides)
    return body


@pytest.fixture
def world(api):
    """An open pool with one pledge and one bid, and the people around it."""
    organizer = make_member()
    member = make_member(funds={"EUR": 10_000})
    supplier = make_member("supplier")
    tokens = {"organizer": token_for(organizer), "member": token_for(member), "supplier": token_for(supplier)}
    r = api.post("/api/v1/pools", pool_body(), token=tokens["organizer"])
    assert r.status_code == 201
    pid = r.get_json()["id"]
    assert (
        api.post(
            f"/api/v1/pools/{pid}/pledges", {"quantity": 5, "max_unit_price": 100}, token=tokens["member"]
        ).status_code
        == 201
    )
    body = {"tiers": [{"min_volume": 5, "unit_price": 90}], "capacity": 50}
    assert api.post(f"/api/v1/pools/{pid}/bids", body, token=tokens["supplier"]).status_code == 201
    return {"pid": pid, "tokens": tokens, "member": member, "organizer": organizer, "supplier": supplier}


def test_bad_pool_bodies_are_422_and_write_nothing(api, world):
    token = world["tokens"]["organizer"]
    before = counts()
    cases = [
        ({"currency": "XXX"}, "currency"),
        ({"currency": "eur"}, "currency"),
        ({"currency": 978}, "currency"),
        ({"currency": None}, "currency"),
        ({"title": "x" * 10_000}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "nul\x00"}, "title"),
        ({"title": 12}, "title"),
        ({"unit": ""}, "unit"),
        ({"unit": "u" * 41}, "unit"),
        ({"description": "d" * 5001}, "description"),
        ({"min_volume": 0}, "min_volume"),
        ({"min_volume": -5}, "min_volume"),
        ({"min_volume": 1.5}, "min_volume"),
        ({"min_volume": "10"}, "min_volume"),
        ({"min_volume": True}, "min_volume"),
        ({"min_volume": 10**30}, "min_volume"),
        ({"min_volume": None}, "min_volume"),
        ({"deadline": iso(now() - timedelta(seconds=5))}, "deadline"),
        ({"deadline": "tomorrow"}, "deadline"),
        ({"deadline": "2031-02-30T00:00:00Z"}, "deadline"),
        ({"deadline": "9999-01-01T00:00:00Z"}, "deadline"),
        ({"deadline": 1893456000}, "deadline"),
        ({"organizer_id": 1}, "organizer_id"),
        ({"status": "awarded"}, "status"),
    ]
    for override, field in cases:
        r = api.post("/api/v1/pools", pool_body(**override), token=token)
        assert_error(r, 422, field=field)
    for missing in ["title", "unit", "currency", "min_volume", "deadline"]:
        body = pool_body()
        del body[missing]
        assert_error(api.post("/api/v1/pools", body, token=token), 422, field=missing)
    for raw in ["{not json", "[1, 2]", '"a string"', "null", "", '{"title": ']:
        r = api.post("/api/v1/pools", data=raw, token=token)
        assert r.status_code in (400, 422), (raw, r.status_code)
        assert_error(r, r.status_code)
    assert counts() == before


def test_unicode_title_round_trips(api):
    token = token_for(make_member())
    title = "Wärmepumpen für Łódź — 太陽光パネル 🚲 \u00e9\u0301"
    r = api.post("/api/v1/pools", pool_body(title=f"  {title}  ", unit="Stück", description="naïve café"), token=token)
    assert r.status_code == 201, r.get_json()
    pid = r.get_json()["id"]
    got = api.get(f"/api/v1/pools/{pid}", token=token).get_json()
    assert (got["title"], got["unit"], got["description"]) == (title, "Stück", "naïve café")
    assert api.post("/api/v1/pools", pool_body(title="t" * 200), token=token).status_code == 201


def test_bad_pledges_are_rejected_and_write_nothing(api, world):
    pid, token = world["pid"], world["tokens"]["member"]
    path = f"/api/v1/pools/{pid}/pledges"
    before = counts()
    wallet_before = wallet_of(world["member"].id)
    values = [0, -1, 1.5, "5", True, False, None, 10**30, [], {}]
    for bad in values:
        assert_error(api.post(path, {"quantity": bad, "max_unit_price": 100}, token=token), 422, field="quantity")
        assert_error(api.post(path, {"quantity": 1, "max_unit_price": bad}, token=token), 422, field="max_unit_price")
    assert_error(api.post(path, {"quantity": 10**9 + 1, "max_unit_price": 1}, token=token), 422, field="quantity")
    assert_error(
        api.post(path, {"quantity": 1, "max_unit_price": 10**12 + 1}, token=token), 422, field="max_unit_price"
    )
    # Each field in range, but the hold quantity x max_unit_price above 10^12.
    assert_error(api.post(path, {"quantity": 10**6, "max_unit_price": 10**6 + 1}, token=token), 422)
    assert_error(api.post(path, {"quantity": 10**9, "max_unit_price": 10**12}, token=token), 422)
    assert_error(api.post(path, {"quantity": 1}, token=token), 422, field="max_unit_price")
    assert_error(api.post(path, {"max_unit_price": 1}, token=token), 422, field="quantity")
    assert_error(
        api.post(path, {"quantity": 1, "max_unit_price": 1, "member_id": 1}, token=token), 422, field="member_id"
    )
    for raw in ['{"quantity": 1e400, "max_unit_price": 100}', '{"quantity": NaN, "max_unit_price": 100}']:
        assert_error(api.post(path, data=raw, token=token), 422, field="quantity")
    assert_error(api.post(path, data="{oops", token=token), 400)
    assert_error(api.post(path, data="[]", token=token), 422)
    # The same bad input with an Idempotency-Key leaves no key behind either.
    assert_error(
        api.post(path, {"quantity": 0, "max_unit_price": 1}, token=token, headers={"Idempotency-Key": "bad-1"}), 422
    )
    # Domain refusals: beyond available funds, from a supplier, without a token.
    assert_error(api.post(path, {"quantity": 100, "max_unit_price": 100}, token=token), 409, "insufficient_funds")
    assert_error(
        api.post(path, {"quantity": 10**6, "max_unit_price": 10**6}, token=token, headers={"Idempotency-Key": "big"}),
        409,
        "insufficient_funds",
    )
    assert_error(api.post(path, {"quantity": 1, "max_unit_price": 1}, token=world["tokens"]["supplier"]), 403)
    assert_error(api.post(path, {"quantity": 1, "max_unit_price": 1}), 401)
    assert counts() == before
    assert wallet_of(world["member"].id) == wallet_before
    # The refused key is free again: the same request with funds now succeeds.
    r = api.post(path, {"quantity": 95, "max_unit_price": 100}, token=token, headers={"Idempotency-Key": "bad-1"})
    assert r.status_code == 201, r.get_json()
    assert wallet_of(world["member"].id)["available"] == 0


def test_pledge_on_a_closed_pool_is_409_and_writes_nothing(api, world):
    pid, tokens = world["pid"], world["tokens"]
    assert api.post(f"/api/v1/pools/{pid}/close", token=tokens["organizer"]).status_code == 200
    before = counts()
    assert_error(
        api.post(f"/api/v1/pools/{pid}/pledges", {"quantity": 1, "max_unit_price": 100}, token=tokens["member"]),
        409,
        "pool_not_open",
    )
    body = {"tiers": [{"min_volume": 1, "unit_price": 50}], "capacity": 10}
    assert_error(api.post(f"/api/v1/pools/{pid}/bids", body, token=tokens["supplier"]), 409, "pool_not_open")
    assert counts() == before


def _bid(tiers, capacity=100):
    return {"tiers": [{"min_volume": v, "unit_price": p} for v, p in tiers], "capacity": capacity}


def test_bad_bids_are_422_keyed_by_tier_and_write_nothing(api, world):
    pid, token = world["pid"], world["tokens"]["supplier"]
    path = f"/api/v1/pools/{pid}/bids"
    before = counts()
    keyed = [
        (_bid([(10, 500), (10, 400)]), "tiers.1.min_volume"),
        (_bid([(10, 500), (5, 400)]), "tiers.1.min_volume"),
        (_bid([(10, 500), (20, 600)]), "tiers.1.unit_price"),
        (_bid([(10, 500), (20, 400), (30, 450)]), "tiers.2.unit_price"),
        (_bid([(10, 500), (20, 400), (20, 300)]), "tiers.2.min_volume"),
        (_bid([]), "tiers"),
        (_bid([(50, 500)], capacity=49), "capacity"),
        (_bid([(10, 500)], capacity=0), "capacity"),
        (_bid([(10, 500)], capacity=-1), "capacity"),
        (_bid([(10, 500)], capacity=1.5), "capacity"),
        (_bid([(10, 500)], capacity="100"), "capacity"),
        (_bid([(10, 500)], capacity=True), "capacity"),
        (_bid([(10, 500)], capacity=10**30), "capacity"),
        (_bid([(0, 500)]), "tiers.0.min_volume"),
        (_bid([(-1, 500)]), "tiers.0.min_volume"),
        (_bid([(1.5, 500)]), "tiers.0.min_volume"),
        (_bid([("10", 500)]), "tiers.0.min_volume"),
        (_bid([(10, 0)]), "tiers.0.unit_price"),
        (_bid([(10, -3)]), "tiers.0.unit_price"),
        (_bid([(10, 4.99)]), "tiers.0.unit_price"),
        (_bid([(10, "5")]), "tiers.0.unit_price"),
        (_bid([(10, True)]), "tiers.0.unit_price"),
        (_bid([(10, 10**12 + 1)]), "tiers.0.unit_price"),
        (_bid([(10, 500), (20, None)]), "tiers.1.unit_price"),
        (_bid([(v, 1000 - v) for v in range(1, 22)]), "tiers"),
        ({"tiers": [{"min_volume": 10, "unit_price": 5, "currency": "EUR"}], "capacity": 10}, "tiers.0.currency"),
        ({"tiers": [{"min_volume": 10}], "capacity": 10}, "tiers.0.unit_price"),
        ({"tiers": "cheap", "capacity": 10}, "tiers"),
        ({"tiers": [5], "capacity": 10}, "tiers.0._schema"),
        ({"tiers": None, "capacity": 10}, "tiers"),
        ({"capacity": 10}, "tiers"),
        ({"tiers": [{"min_volume": 1, "unit_price": 5}]}, "capacity"),
        ({**_bid([(10, 5)]), "supplier_id": 1}, "supplier_id"),
    ]
    for body, field in keyed:
        r = api.post(path, body, token=token)
        body_out = assert_error(r, 422, field=field)
        assert body_out["reason"] == "validation_error", body_out
    assert_error(api.post(path, data="{", token=token), 400)
    # A non-supplier may not bid, even a well-formed bid.
    for role in ("member", "organizer"):
        assert_error(api.post(path, _bid([(10, 500)]), token=world["tokens"][role]), 403)
    assert_error(api.post(path, _bid([(10, 500)])), 401)
    assert counts() == before
    # Still one active bid, unchanged by all of the above.
    mine = api.get(path, token=token).get_json()
    assert [(b["tiers"], b["capacity"]) for b in mine] == [([{"min_volume": 5, "unit_price": 90}], 50)]


def test_close_delivery_cancel_by_the_wrong_people_write_nothing(api, world):
    pid, tokens = world["pid"], world["tokens"]
    other_supplier = token_for(make_member("supplier"))
    before = counts()
    assert_error(api.post(f"/api/v1/pools/{pid}/close", token=tokens["member"]), 403)
    assert_error(api.post(f"/api/v1/pools/{pid}/close", token=tokens["supplier"]), 403)
    assert_error(api.post(f"/api/v1/pools/{pid}/cancel", token=tokens["member"]), 403)
    assert_error(api.post(f"/api/v1/pools/{pid}/delivery", token=tokens["supplier"]), 409, "invalid_state")
    assert_error(api.post(f"/api/v1/pools/{pid}/delivery", token=other_supplier), 409, "invalid_state")
    assert counts() == before


def test_bad_query_strings_are_422(api, world):
    token = world["tokens"]["member"]
    assert_error(api.get("/api/v1/pools", token=token, query={"status": "bogus"}), 422, field="status")
    assert_error(api.get("/api/v1/pools", token=token, query={"page": 0}), 422)
    assert_error(api.get("/api/v1/pools", token=token, query={"page_size": 501}), 422)
    assert_error(api.get("/api/v1/pools", token=token, query={"page": "x"}), 422)
    r = api.get("/api/v1/pools", token=token, query={"q": "%_\\"})
    assert r.status_code == 200 and r.get_json() == []
    r = api.get("/api/v1/pools", token=token, query={"q": "cargo"})
    assert [p["id"] for p in r.get_json()] == [world["pid"]]
    assert json.loads(r.headers["X-Pagination"])["total"] == 1
