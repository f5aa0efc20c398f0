"""Buying pools through the JSON API, held to shared/API.md to the cent.

Runs on SQLite and (with TEST_DATABASE_URL) on PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import func, select

from marketplace.clock import now
from marketplace.extensions import db
from marketplace.ledger.models import Hold, IdempotencyRecord
from marketplace.money import round_half_up
from marketplace.pools.models import Pledge
from tests.helpers import assert_error, assert_ledger_invariants, make_member, token_for, wallet_of

POOL_KEYS = {
    "id",
    "title",
    "description",
    "unit",
    "currency",
    "min_volume",
    "deadline",
    "status",
    "organizer_id",
    "volume",
    "pledge_count",
    "best_unit_price",
    "award",
}
PLEDGE_KEYS = {"id", "pool_id", "member_id", "quantity", "max_unit_price", "held_amount", "status", "charged_amount"}
BID_KEYS = {"id", "pool_id", "supplier_id", "tiers", "capacity", "status"}
AWARD_KEYS = {"bid_id", "supplier_id", "unit_price", "volume", "total", "fee"}
COMMENT_KEYS = {"id", "author_id", "body", "created_at"}


def iso(moment) -> str:
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def in_hours(hours: float) -> str:
    return iso(now() + timedelta(hours=hours))


def pool_body(**overrides) -> dict:
    body = {
        "title": "Solar panels for the community hall",
        "description": "Bulk order of 400 W panels",
        "unit": "panel",
        "currency": "EUR",
        "min_volume": 100,
        "deadline": in_hours(24),
    }
    body.update(overrides)
    return body


def create_pool(api, token, **overrides) -> dict:
    r = api.post("/api/v1/pools", pool_body(**overrides), token=token)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def pledge(api, token, pool_id, quantity, max_unit_price, **kw):
    return api.post(
        f"/api/v1/pools/{pool_id}/pledges", {"quantity": quantity, "max_unit_price": max_unit_price}, token=token, **kw
    )


def bid(api, token, pool_id, tiers, capacity):
    body = {"tiers": [{"min_volume": v, "unit_price": p} for v, p in tiers], "capacity": capacity}
    return api.post(f"/api/v1/pools/{pool_id}/bids", body, token=token)


def get_pool(api, token, pool_id) -> dict:
    r = api.get(f"/api/v1/pools/{pool_id}", token=token)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def ledger_balance(api, operator_token, code) -> int:
    r = api.get(f"/api/v1/ledger/accounts/{code}", token=operator_token)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["balance"]


def api_wallet(api, token, currency="EUR") -> dict:
    for row in api.get("/api/v1/wallet", token=token).get_json()["balances"]:
        if row["currency"] == currency:
            return row
    return {"currency": currency, "balance": 0, "held": 0, "available": 0}


def _fee(total: int) -> int:
    """The API.md fee: round_half_up(total * POOL_FEE_BPS / 10000)."""
    return round_half_up(Decimal(total) * Decimal(current_app.config["POOL_FEE_BPS"]) / Decimal(10000))


# ---------------------------------------------------------------- the whole story


def test_design_worked_example_through_the_api(api):
    operator = make_member("operator")
    organizer = make_member()
    unverified = make_member(verified=False)
    a, b, c, d = (make_member(funds={"EUR": 100_000}, name=n) for n in "ABCD")
    x = make_member("supplier", name="Supplier X")
    y = make_member("supplier", name="Supplier Y")
    tok = {m.id: token_for(m) for m in (operator, organizer, unverified, a, b, c, d, x, y)}

    # Who may open a pool.
    assert_error(api.post("/api/v1/pools", pool_body(), token=tok[unverified.id]), 409, "not_verified")
    assert_error(api.post("/api/v1/pools", pool_body(), token=tok[x.id]), 403, "forbidden")
    assert_error(
        api.post("/api/v1/pools", pool_body(deadline=iso(now() - timedelta(minutes=1))), token=tok[organizer.id]),
        422,
        field="deadline",
    )
    assert_error(api.post("/api/v1/pools", pool_body()), 401)
    deadline = in_hours(24)
    r = api.post("/api/v1/pools", pool_body(deadline=deadline), token=tok[organizer.id])
    assert r.status_code == 201, r.get_json()
    pool = r.get_json()
    assert set(pool) >= POOL_KEYS
    assert {k: pool[k] for k in POOL_KEYS - {"id"}} == {
        "title": "Solar panels for the community hall",
        "description": "Bulk order of 400 W panels",
        "unit": "panel",
        "currency": "EUR",
        "min_volume": 100,
        "deadline": deadline,
        "status": "open",
        "organizer_id": organizer.id,
        "volume": 0,
        "pledge_count": 0,
        "best_unit_price": None,
        "award": None,
    }
    pid = pool["id"]
    by_operator = create_pool(api, tok[operator.id], title="Operator's pool")
    assert by_operator["organizer_id"] == operator.id and by_operator["status"] == "open"

    # Pledges: 201 with the exact body, each holding quantity x max price.
    pledges = {}
    for member, quantity, price in [(a, 50, 900), (b, 40, 800), (c, 30, 750), (d, 50, 600)]:
        r = pledge(api, tok[member.id], pid, quantity, price)
        assert r.status_code == 201, r.get_json()
        body = r.get_json()
        assert set(body) >= PLEDGE_KEYS
        assert {k: body[k] for k in PLEDGE_KEYS - {"id"}} == {
            "pool_id": pid,
            "member_id": member.id,
            "quantity": quantity,
            "max_unit_price": price,
            "held_amount": quantity * price,
            "status": "active",
            "charged_amount": 0,
        }
        pledges[member.id] = body
        assert api_wallet(api, tok[member.id]) == {
            "currency": "EUR",
            "balance": 100_000,
            "held": quantity * price,
            "available": 100_000 - quantity * price,
        }
    view = get_pool(api, tok[a.id], pid)
    assert (view["volume"], view["pledge_count"], view["best_unit_price"]) == (170, 4, None)
    open_ids = [p["id"] for p in api.get("/api/v1/pools", token=tok[a.id], query={"status": "open"}).get_json()]
    assert sorted(open_ids) == sorted([pid, by_operator["id"]])

    # Bids: X first bids low, then replaces its bid; the old one stops counting.
    r = bid(api, tok[x.id], pid, [(50, 600)], 500)
    assert r.status_code == 201, r.get_json()
    first_x = r.get_json()
    assert get_pool(api, tok[a.id], pid)["best_unit_price"] == 600
    r = bid(api, tok[x.id], pid, [(50, 900), (100, 800), (150, 700)], 500)
    assert r.status_code == 201, r.get_json()
    bid_x = r.get_json()
    assert set(bid_x) >= BID_KEYS
    assert {k: bid_x[k] for k in BID_KEYS - {"id"}} == {
        "pool_id": pid,
        "supplier_id": x.id,
        "tiers": [
            {"min_volume": 50, "unit_price": 900},
            {"min_volume": 100, "unit_price": 800},
            {"min_volume": 150, "unit_price": 700},
        ],
        "capacity": 500,
        "status": "active",
    }
    assert get_pool(api, tok[a.id], pid)["best_unit_price"] == 700
    r = bid(api, tok[y.id], pid, [(100, 750)], 200)
    assert r.status_code == 201, r.get_json()
    bid_y = r.get_json()
    view = get_pool(api, tok[a.id], pid)
    assert (view["volume"], view["pledge_count"], view["best_unit_price"]) == (170, 4, 700)
    assert view["award"] is None
    raw = api.get(f"/api/v1/pools/{pid}", token=tok[a.id]).get_data(as_text=True)
    assert "Supplier X" not in raw and "Supplier Y" not in raw

    # Bids while open: own bid for a supplier, all for operators, none for members.
    assert [bd["id"] for bd in api.get(f"/api/v1/pools/{pid}/bids", token=tok[x.id]).get_json()] == [bid_x["id"]]
    assert [bd["id"] for bd in api.get(f"/api/v1/pools/{pid}/bids", token=tok[y.id]).get_json()] == [bid_y["id"]]
    assert sorted(bd["id"] for bd in api.get(f"/api/v1/pools/{pid}/bids", token=tok[operator.id]).get_json()) == sorted(
        [bid_x["id"], bid_y["id"]]
    )
    assert api.get(f"/api/v1/pools/{pid}/bids", token=tok[a.id]).get_json() == []
    assert api.get(f"/api/v1/pools/{pid}/bids", token=tok[organizer.id]).get_json() == []

    # Close: a random member may not; the organizer awards Y at 7.50 for 120 units.
    assert_error(api.post(f"/api/v1/pools/{pid}/close", token=tok[a.id]), 403)
    assert_error(api.post(f"/api/v1/pools/{pid}/close", token=tok[x.id]), 403)
    r = api.post(f"/api/v1/pools/{pid}/close", token=tok[organizer.id])
    assert r.status_code == 200, r.get_json()
    closed = r.get_json()
    total = 120 * 750
    fee = _fee(total)
    assert fee == 900
    assert closed["status"] == "awarded"
    assert set(closed["award"]) >= AWARD_KEYS
    assert {k: closed["award"][k] for k in AWARD_KEYS} == {
        "bid_id": bid_y["id"],
        "supplier_id": y.id,
        "unit_price": 750,
        "volume": 120,
        "total": total,
        "fee": fee,
    }
    assert get_pool(api, tok[d.id], pid)["award"] == closed["award"]
    assert_error(api.post(f"/api/v1/pools/{pid}/close", token=tok[organizer.id]), 409, "pool_not_open")
    assert_error(api.post(f"/api/v1/pools/{pid}/close", token=tok[operator.id]), 409, "pool_not_open")
    assert_error(pledge(api, tok[d.id], pid, 1, 100), 409, "pool_not_open")
    assert_error(bid(api, tok[x.id], pid, [(1, 1)], 10), 409, "pool_not_open")
    open_ids = [p["id"] for p in api.get("/api/v1/pools", token=tok[a.id], query={"status": "open"}).get_json()]
    assert open_ids == [by_operator["id"]]

    # Each pledge filled at 7.50 (rest released) or released.
    rows = {p["member_id"]: p for p in api.get(f"/api/v1/pools/{pid}/pledges", token=tok[organizer.id]).get_json()}
    expected = {
        a.id: ("filled", 50 * 750),
        b.id: ("filled", 40 * 750),
        c.id: ("filled", 30 * 750),
        d.id: ("released", 0),
    }
    assert {m: (p["status"], p["charged_amount"]) for m, p in rows.items()} == expected
    assert [p["status"] for p in api.get(f"/api/v1/pools/{pid}/pledges", token=tok[a.id]).get_json()] == ["filled"]
    for member in (a, b, c, d):
        charged = expected[member.id][1]
        assert wallet_of(member.id) == {
            "currency": "EUR",
            "balance": 100_000 - charged,
            "held": 0,
            "available": 100_000 - charged,
        }
    escrow = f"pool:{pid}:escrow:EUR"
    assert ledger_balance(api, tok[operator.id], escrow) == total

    # After close every member sees every (current) bid with its outcome.
    outcome_bids = {bd["id"]: bd for bd in api.get(f"/api/v1/pools/{pid}/bids", token=tok[d.id]).get_json()}
    assert set(outcome_bids) == {bid_x["id"], bid_y["id"]}
    assert first_x["id"] not in outcome_bids
    assert outcome_bids[bid_y["id"]]["outcome"]["cleared"] is True
    assert outcome_bids[bid_y["id"]]["outcome"]["winner"] is True
    assert outcome_bids[bid_y["id"]]["outcome"]["volume"] == 120
    assert outcome_bids[bid_y["id"]]["outcome"]["unit_price"] == 750
    assert outcome_bids[bid_x["id"]]["outcome"]["cleared"] is False
    assert outcome_bids[bid_x["id"]]["outcome"]["winner"] is False
    assert (outcome_bids[bid_x["id"]]["status"], outcome_bids[bid_y["id"]]["status"]) == ("lost", "won")

    # Reviews wait for delivery; delivery only by the winner.
    assert_error(
        api.post(f"/api/v1/pools/{pid}/reviews", {"rating": 5, "body": "early"}, token=tok[a.id]), 409, "invalid_state"
    )
    assert_error(api.post(f"/api/v1/pools/{pid}/delivery", token=tok[x.id]), 403)
    assert_error(api.post(f"/api/v1/pools/{pid}/delivery", token=tok[a.id]), 403)
    assert wallet_of(y.id)["balance"] == 0
    r = api.post(f"/api/v1/pools/{pid}/delivery", token=tok[y.id])
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "delivered"
    assert_error(api.post(f"/api/v1/pools/{pid}/delivery", token=tok[y.id]), 409, "invalid_state")
    assert wallet_of(y.id) == {"currency": "EUR", "balance": total - fee, "held": 0, "available": total - fee}
    assert wallet_of(x.id)["balance"] == 0
    assert ledger_balance(api, tok[operator.id], "platform:fees:EUR") == fee
    assert ledger_balance(api, tok[operator.id], escrow) == 0

    # Reviews: the filled member once; released members and bystanders never.
    r = api.post(f"/api/v1/pools/{pid}/reviews", {"rating": 5, "body": "Great panels"}, token=tok[a.id])
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["rating"] == 5 and r.get_json()["supplier_id"] == y.id
    r = api.post(f"/api/v1/pools/{pid}/reviews", {"rating": 3}, token=tok[b.id])
    assert r.status_code == 201, r.get_json()
    assert_error(
        api.post(f"/api/v1/pools/{pid}/reviews", {"rating": 4, "body": "again"}, token=tok[a.id]), 409, "already_exists"
    )
    assert_error(api.post(f"/api/v1/pools/{pid}/reviews", {"rating": 1, "body": "released"}, token=tok[d.id]), 403)
    assert_error(api.post(f"/api/v1/pools/{pid}/reviews", {"rating": 1, "body": "never"}, token=tok[organizer.id]), 403)
    assert_error(api.post(f"/api/v1/pools/{pid}/reviews", {"rating": 6}, token=tok[c.id]), 422, field="rating")
    profile = api.get(f"/api/v1/suppliers/{y.id}", token=tok[d.id]).get_json()
    assert (profile["rating_count"], profile["rating_average"]) == (2, "4.00")
    assert profile["histogram"] == {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1}
    assert (profile["pools_won"], profile["pools_delivered"]) == (1, 1)
    other = api.get(f"/api/v1/suppliers/{x.id}", token=tok[d.id]).get_json()
    assert (other["rating_count"], other["rating_average"], other["pools_won"]) == (0, None, 0)
    assert_error(api.get(f"/api/v1/suppliers/{a.id}", token=tok[d.id]), 404)
    assert len(api.get(f"/api/v1/pools/{pid}/reviews", token=tok[d.id]).get_json()) == 2

    # Comments are plain text, returned verbatim in JSON.
    script = "<script>alert('hi')</script> & <b>bold</b>"
    r = api.post(f"/api/v1/pools/{pid}/comments", {"body": script}, token=tok[d.id])
    assert r.status_code == 201, r.get_json()
    comment = r.get_json()
    assert set(comment) >= COMMENT_KEYS
    assert (comment["author_id"], comment["body"]) == (d.id, script)
    listed = api.get(f"/api/v1/pools/{pid}/comments", token=tok[a.id]).get_json()
    assert [(cm["id"], cm["body"]) for cm in listed] == [(comment["id"], script)]

    # Notifications tell everyone what happened.
    def kinds(member):
        r = api.get("/api/v1/notifications", token=tok[member.id])
        assert r.status_code == 200
        return [n["kind"] for n in r.get_json()]

    assert set(kinds(a)) >= {"pool_awarded", "pool_delivered"}
    assert "pool_released" in kinds(d)
    assert set(kinds(y)) >= {"bid_won", "payout"}
    assert kinds(x) == ["bid_lost"]

    # Every party's money, to the cent, and a sound ledger.
    deposits = 4 * 100_000
    final = {
        a.id: 100_000 - 37_500,
        b.id: 100_000 - 30_000,
        c.id: 100_000 - 22_500,
        d.id: 100_000,
        x.id: 0,
        y.id: total - fee,
        organizer.id: 0,
        operator.id: 0,
    }
    for member_id, balance in final.items():
        assert wallet_of(member_id) == {"currency": "EUR", "balance": balance, "held": 0, "available": balance}
    assert sum(final.values()) + fee == deposits
    tb = api.get("/api/v1/ledger/trial-balance", token=tok[operator.id]).get_json()
    assert tb["totals"]["EUR"]["debits"] == tb["totals"]["EUR"]["credits"]
    assert db.session.execute(select(func.count(Hold.id)).where(Hold.status == "held")).scalar_one() == 0
    assert_ledger_invariants()


def test_pool_below_min_volume_fails_and_releases_every_hold(api):
    operator = make_member("operator")
    organizer = make_member()
    a = make_member(funds={"EUR": 20_000})
    b = make_member(funds={"EUR": 20_000})
    s = make_member("supplier")
    t = {m.id: token_for(m) for m in (operator, organizer, a, b, s)}
    pid = create_pool(api, t[organizer.id], min_volume=100)["id"]
    assert pledge(api, t[a.id], pid, 30, 500).status_code == 201
    assert pledge(api, t[b.id], pid, 20, 450).status_code == 201
    r = bid(api, t[s.id], pid, [(1, 100)], 1_000)
    assert r.status_code == 201
    view = get_pool(api, t[a.id], pid)
    assert (view["volume"], view["pledge_count"], view["best_unit_price"]) == (50, 2, 100)
    assert wallet_of(a.id)["held"] == 15_000 and wallet_of(b.id)["held"] == 9_000

    r = api.post(f"/api/v1/pools/{pid}/close", token=t[operator.id])
    assert r.status_code == 200, r.get_json()
    assert (r.get_json()["status"], r.get_json()["award"]) == ("failed", None)
    for member in (a, b):
        assert wallet_of(member.id) == {"currency": "EUR", "balance": 20_000, "held": 0, "available": 20_000}
    statuses = [
        (p["status"], p["charged_amount"])
        for p in api.get(f"/api/v1/pools/{pid}/pledges", token=t[operator.id]).get_json()
    ]
    assert statuses == [("released", 0), ("released", 0)]
    bids = api.get(f"/api/v1/pools/{pid}/bids", token=t[a.id]).get_json()
    assert [(bd["outcome"]["cleared"], bd["outcome"]["reason"]) for bd in bids] == [(False, "below_min_volume")]
    assert_error(api.post(f"/api/v1/pools/{pid}/delivery", token=t[s.id]), 409, "invalid_state")
    assert_error(api.post(f"/api/v1/pools/{pid}/reviews", {"rating": 1}, token=t[a.id]), 403)
    assert_error(api.post(f"/api/v1/pools/{pid}/close", token=t[organizer.id]), 409, "pool_not_open")
    assert "pool_failed" in [n["kind"] for n in api.get("/api/v1/notifications", token=t[a.id]).get_json()]
    assert [p["id"] for p in api.get("/api/v1/pools", token=t[a.id], query={"status": "failed"}).get_json()] == [pid]
    assert api.get("/api/v1/pools", token=t[a.id], query={"status": "open"}).get_json() == []
    tb = api.get("/api/v1/ledger/trial-balance", token=t[operator.id]).get_json()
    assert f"pool:{pid}:escrow:EUR" not in {row["code"] for row in tb["accounts"] if row["balance"]}
    assert_ledger_invariants()


def test_pledge_ties_clear_oldest_first_and_capacity_limits_the_prefix(api):
    organizer = make_member()
    members = [make_member(funds={"EUR": 10_000}) for _ in range(3)]
    s = make_member("supplier")
    t = {m.id: token_for(m) for m in (organizer, s, *members)}
    pid = create_pool(api, t[organizer.id], min_volume=10)["id"]
    for m in members:
        assert pledge(api, t[m.id], pid, 10, 500).status_code == 201
    assert bid(api, t[s.id], pid, [(10, 400)], 25).status_code == 201
    closed = api.post(f"/api/v1/pools/{pid}/close", token=t[organizer.id]).get_json()
    assert closed["award"]["volume"] == 20 and closed["award"]["total"] == 8_000
    rows = api.get(f"/api/v1/pools/{pid}/pledges", token=t[organizer.id]).get_json()
    assert [(p["member_id"], p["status"]) for p in rows] == [
        (members[0].id, "filled"),
        (members[1].id, "filled"),
        (members[2].id, "released"),
    ]
    assert [wallet_of(m.id)["balance"] for m in members] == [6_000, 6_000, 10_000]


def test_unknown_pool_is_404_everywhere(api):
    member = make_member(funds={"EUR": 1_000})
    supplier = make_member("supplier")
    tm, ts = token_for(member), token_for(supplier)
    assert_error(api.get("/api/v1/pools/999999", token=tm), 404)
    assert_error(pledge(api, tm, 999999, 1, 1), 404)
    assert_error(bid(api, ts, 999999, [(1, 1)], 1), 404)
    assert_error(api.get("/api/v1/pools/999999/bids", token=tm), 404)
    assert_error(api.post("/api/v1/pools/999999/close", token=tm), 404)
    assert_error(api.post("/api/v1/pools/999999/delivery", token=ts), 404)
    assert_error(api.post("/api/v1/pools/999999/cancel", token=tm), 404)
    assert_error(api.delete("/api/v1/pools/999999/pledges/1", token=tm), 404)
    assert wallet_of(member.id) == {"currency": "EUR", "balance": 1_000, "held": 0, "available": 1_000}


# ---------------------------------------------------------------- idempotency


def test_pledge_idempotency_key_replays_once_and_rejects_a_different_body(api):
    organizer = make_member()
    member = make_member(funds={"EUR": 50_000})
    other = make_member(funds={"EUR": 50_000})
    tm = token_for(member)
    pid = create_pool(api, token_for(organizer))["id"]
    headers = {"Idempotency-Key": "pledge-42"}
    first = pledge(api, tm, pid, 10, 1_000, headers=headers)
    second = pledge(api, tm, pid, 10, 1_000, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert wallet_of(member.id) == {"currency": "EUR", "balance": 50_000, "held": 10_000, "available": 40_000}
    assert db.session.execute(select(func.count(Pledge.id))).scalar_one() == 1
    assert db.session.execute(select(func.count(Hold.id))).scalar_one() == 1

    different = pledge(api, tm, pid, 11, 1_000, headers=headers)
    assert_error(different, 409, "idempotency_key_reused")
    assert wallet_of(member.id)["held"] == 10_000
    assert db.session.execute(select(func.count(Hold.id))).scalar_one() == 1

    # Keys belong to the member: the same key from someone else is a new pledge.
    theirs = pledge(api, token_for(other), pid, 10, 1_000, headers=headers)
    assert theirs.status_code == 201 and theirs.get_json()["id"] != first.get_json()["id"]
    assert get_pool(api, tm, pid)["pledge_count"] == 2
    # Without a key every request is a new pledge.
    assert pledge(api, tm, pid, 10, 1_000).status_code == 201
    assert wallet_of(member.id)["held"] == 20_000
    assert_error(pledge(api, tm, pid, 1, 1, headers={"Idempotency-Key": "k" * 256}), 422)
    assert wallet_of(member.id)["held"] == 20_000


def test_replay_after_the_pool_closed_still_returns_the_first_response(api):
    organizer = make_member()
    member = make_member(funds={"EUR": 5_000})
    tm, to = token_for(member), token_for(organizer)
    pid = create_pool(api, to)["id"]
    headers = {"Idempotency-Key": "late-retry"}
    first = pledge(api, tm, pid, 5, 100, headers=headers)
    assert first.status_code == 201
    assert api.post(f"/api/v1/pools/{pid}/close", token=to).get_json()["status"] == "failed"
    again = pledge(api, tm, pid, 5, 100, headers=headers)
    assert (again.status_code, again.get_json()) == (201, first.get_json())
    assert wallet_of(member.id) == {"currency": "EUR", "balance": 5_000, "held": 0, "available": 5_000}


def test_pledge_replay_is_the_first_response_byte_for_byte_and_matches_the_stored_pledge(api):
    organizer = make_member()
    member = make_member(funds={"EUR": 50_000})
    tm = token_for(member)
    pid = create_pool(api, token_for(organizer))["id"]
    headers = {"Idempotency-Key": "pledge-bytes"}
    first = pledge(api, tm, pid, 3, 700, headers=headers)
    assert first.status_code == 201
    db.session.expire_all()
    again = pledge(api, tm, pid, 3, 700, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert (again.status_code, again.mimetype, again.get_data()) == (201, "application/json", first.get_data())
    record = db.session.execute(select(IdempotencyRecord).where(IdempotencyRecord.key == "pledge-bytes")).scalar_one()
    assert (record.status_code, record.response_body) == (201, first.get_data(as_text=True))
    # The answer is made from the values the pledge was stored with: the same as reading it back.
    body = first.get_json()
    assert api.get(f"/api/v1/pools/{pid}/pledges", token=tm).get_json() == [body]
    assert body == {
        "id": body["id"],
        "pool_id": pid,
        "member_id": member.id,
        "quantity": 3,
        "max_unit_price": 700,
        "held_amount": 2_100,
        "status": "active",
        "charged_amount": 0,
        "created_at": body["created_at"],
        "funding": "wallet",
        "authorization": None,
    }
    hold = db.session.get(Hold, db.session.get(Pledge, body["id"]).hold_id)
    assert (hold.status, hold.amount, hold.reference) == ("held", 2_100, f"pool:{pid}:pledge")
    assert wallet_of(member.id) == {"currency": "EUR", "balance": 50_000, "held": 2_100, "available": 47_900}
    assert_ledger_invariants()


# ---------------------------------------------------------------- test clock and scheduler


def test_deadline_passes_on_the_test_clock_and_run_due_closes_the_pools(api, app):
    operator = make_member("operator")
    organizer = make_member()
    a = make_member(funds={"EUR": 100_000})
    b = make_member(funds={"EUR": 100_000})
    s = make_member("supplier")
    t = {m.id: token_for(m) for m in (operator, organizer, a, b, s)}
    start = now().replace(microsecond=0)
    first = create_pool(api, t[organizer.id], min_volume=10, deadline=iso(start + timedelta(hours=1)))["id"]
    second = create_pool(api, t[organizer.id], min_volume=10, deadline=iso(start + timedelta(hours=2)))["id"]
    assert pledge(api, t[a.id], first, 20, 500).status_code == 201
    assert bid(api, t[s.id], first, [(10, 400)], 100).status_code == 201
    assert pledge(api, t[b.id], second, 5, 500).status_code == 201

    # Nothing is due yet.
    r = api.post("/api/v1/operations/run-due", token=t[operator.id])
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["jobs"]["close_pools"]["closed"] == 0
    assert get_pool(api, t[a.id], first)["status"] == "open"

    # Only operators move the clock, and only forward.
    assert_error(api.put("/api/v1/test-clock", {"now": iso(start + timedelta(hours=1))}, token=t[a.id]), 403)
    assert_error(api.post("/api/v1/operations/run-due", token=t[a.id]), 403)
    past_first = start + timedelta(hours=1, seconds=1)
    r = api.put("/api/v1/test-clock", {"now": iso(past_first)}, token=t[operator.id])
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["now"] == iso(past_first)
    assert_error(api.put("/api/v1/test-clock", {"now": iso(start)}, token=t[operator.id]), 409)

    # Past the deadline nobody can pledge or bid, though the pool still reads open.
    assert_error(pledge(api, t[b.id], first, 1, 500), 409, "pool_not_open")
    assert_error(bid(api, t[s.id], first, [(10, 300)], 100), 409, "pool_not_open")
    assert get_pool(api, t[a.id], first)["status"] == "open"
    assert pledge(api, t[a.id], second, 1, 500).status_code == 201

    r = api.post("/api/v1/operations/run-due", token=t[operator.id])
    assert r.status_code == 200, r.get_json()
    report = r.get_json()["jobs"]["close_pools"]
    assert (report["closed"], report["awarded"], report["failed"]) == (1, 1, 0)
    assert report["pool_ids"] == [first]
    closed = get_pool(api, t[a.id], first)
    assert closed["status"] == "awarded"
    assert closed["award"]["total"] == 20 * 400 and closed["award"]["fee"] == _fee(8_000)
    assert wallet_of(a.id) == {"currency": "EUR", "balance": 92_000, "held": 500, "available": 91_500}
    assert get_pool(api, t[a.id], second)["status"] == "open"
    assert "pool_awarded" in [n["kind"] for n in api.get("/api/v1/notifications", token=t[a.id]).get_json()]

    # The cron command closes the second pool once its deadline passes.
    assert (
        api.put("/api/v1/test-clock", {"now": iso(start + timedelta(hours=3))}, token=t[operator.id]).status_code == 200
    )
    result = app.test_cli_runner().invoke(args=["run-due"])
    assert result.exit_code == 0, result.output
    assert "close_pools" in result.output and "'closed': 1" in result.output and "'failed': 1" in result.output
    db.session.expire_all()
    assert get_pool(api, t[b.id], second)["status"] == "failed"
    assert wallet_of(b.id) == {"currency": "EUR", "balance": 100_000, "held": 0, "available": 100_000}
    assert wallet_of(a.id) == {"currency": "EUR", "balance": 92_000, "held": 0, "available": 92_000}
    # Running again finds nothing more to do.
    again = api.post("/api/v1/operations/run-due", token=t[operator.id]).get_json()["jobs"]["close_pools"]
    assert again["closed"] == 0
    assert_ledger_invariants()


def test_organizer_may_close_before_the_deadline_but_a_past_deadline_pool_can_still_be_closed(api):
    operator = make_member("operator")
    organizer = make_member()
    t_op, t_org = token_for(operator), token_for(organizer)
    start = now().replace(microsecond=0)
    pid = create_pool(api, t_org, deadline=iso(start + timedelta(minutes=5)))["id"]
    assert api.put("/api/v1/test-clock", {"now": iso(start + timedelta(minutes=6))}, token=t_op).status_code == 200
    r = api.post(f"/api/v1/pools/{pid}/close", token=t_org)
    assert r.status_code == 200 and r.get_json()["status"] == "failed"


# ---------------------------------------------------------------- withdraw and cancel


def test_withdraw_pledge_rules(api):
    organizer = make_member()
    a = make_member(funds={"EUR": 10_000})
    b = make_member(funds={"EUR": 10_000})
    ta, tb, to = token_for(a), token_for(b), token_for(organizer)
    pid = create_pool(api, to)["id"]
    other_pid = create_pool(api, to)["id"]
    p1 = pledge(api, ta, pid, 10, 300).get_json()
    p2 = pledge(api, ta, pid, 5, 200).get_json()
    assert wallet_of(a.id)["held"] == 4_000

    assert_error(api.delete(f"/api/v1/pools/{pid}/pledges/{p1['id']}", token=tb), 403)
    assert_error(api.delete(f"/api/v1/pools/{pid}/pledges/{p1['id']}", token=to), 403)
    assert_error(api.delete(f"/api/v1/pools/{pid}/pledges/999999", token=ta), 404)
    assert_error(api.delete(f"/api/v1/pools/{other_pid}/pledges/{p1['id']}", token=ta), 404)
    assert_error(api.delete(f"/api/v1/pools/{pid}/pledges/{p1['id']}"), 401)
    assert wallet_of(a.id)["held"] == 4_000

    r = api.delete(f"/api/v1/pools/{pid}/pledges/{p1['id']}", token=ta)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["id"], body["status"], body["charged_amount"], body["held_amount"]) == (
        p1["id"],
        "withdrawn",
        0,
        3_000,
    )
    assert wallet_of(a.id) == {"currency": "EUR", "balance": 10_000, "held": 1_000, "available": 9_000}
    assert_error(api.delete(f"/api/v1/pools/{pid}/pledges/{p1['id']}", token=ta), 409, "invalid_state")
    view = get_pool(api, ta, pid)
    assert (view["volume"], view["pledge_count"]) == (5, 1)

    assert api.post(f"/api/v1/pools/{pid}/close", token=to).status_code == 200
    assert_error(api.delete(f"/api/v1/pools/{pid}/pledges/{p2['id']}", token=ta), 409, "pool_not_open")
    assert wallet_of(a.id) == {"currency": "EUR", "balance": 10_000, "held": 0, "available": 10_000}
    assert_ledger_invariants()


def test_cancel_open_pool_releases_every_hold(api):
    operator = make_member("operator")
    organizer = make_member()
    a = make_member(funds={"EUR": 10_000})
    b = make_member(funds={"EUR": 10_000})
    s = make_member("supplier")
    t = {m.id: token_for(m) for m in (operator, organizer, a, b, s)}
    pid = create_pool(api, t[organizer.id])["id"]
    pledge(api, t[a.id], pid, 10, 500)
    pledge(api, t[b.id], pid, 20, 300)
    bid(api, t[s.id], pid, [(1, 100)], 1_000)
    assert_error(api.post(f"/api/v1/pools/{pid}/cancel", token=t[a.id]), 403)
    assert_error(api.post(f"/api/v1/pools/{pid}/cancel", token=t[s.id]), 403)
    assert wallet_of(a.id)["held"] == 5_000
    r = api.post(f"/api/v1/pools/{pid}/cancel", token=t[organizer.id])
    assert r.status_code == 200, r.get_json()
    assert (r.get_json()["status"], r.get_json()["award"]) == ("cancelled", None)
    for member in (a, b):
        assert wallet_of(member.id) == {"currency": "EUR", "balance": 10_000, "held": 0, "available": 10_000}
    rows = api.get(f"/api/v1/pools/{pid}/pledges", token=t[organizer.id]).get_json()
    assert {p["status"] for p in rows} == {"released"}
    assert_error(api.post(f"/api/v1/pools/{pid}/cancel", token=t[organizer.id]), 409, "invalid_state")
    assert_error(api.post(f"/api/v1/pools/{pid}/close", token=t[organizer.id]), 409, "pool_not_open")
    assert_error(pledge(api, t[a.id], pid, 1, 1), 409, "pool_not_open")
    assert "pool_cancelled" in [n["kind"] for n in api.get("/api/v1/notifications", token=t[b.id]).get_json()]
    assert_ledger_invariants()


def test_operator_cancels_an_awarded_pool_and_refunds_from_escrow(api):
    operator = make_member("operator")
    organizer = make_member()
    a = make_member(funds={"EUR": 10_000})
    b = make_member(funds={"EUR": 10_000})
    c = make_member(funds={"EUR": 10_000})
    s = make_member("supplier")
    t = {m.id: token_for(m) for m in (operator, organizer, a, b, c, s)}
    pid = create_pool(api, t[organizer.id], min_volume=20)["id"]
    pledge(api, t[a.id], pid, 10, 500)
    pledge(api, t[b.id], pid, 15, 400)
    pledge(api, t[c.id], pid, 10, 100)
    bid(api, t[s.id], pid, [(20, 333)], 100)
    closed = api.post(f"/api/v1/pools/{pid}/close", token=t[organizer.id]).get_json()
    assert closed["status"] == "awarded"
    assert closed["award"] == {
        "bid_id": closed["award"]["bid_id"],
        "supplier_id": s.id,
        "unit_price": 333,
        "volume": 25,
        "total": 8_325,
        "fee": _fee(8_325),
    }
    assert [wallet_of(m.id)["balance"] for m in (a, b, c)] == [10_000 - 3_330, 10_000 - 4_995, 10_000]
    escrow = f"pool:{pid}:escrow:EUR"
    assert ledger_balance(api, t[operator.id], escrow) == 8_325

    assert_error(api.post(f"/api/v1/pools/{pid}/cancel", token=t[organizer.id]), 409, "invalid_state")
    assert_error(api.post(f"/api/v1/pools/{pid}/cancel", token=t[a.id]), 403)
    r = api.post(f"/api/v1/pools/{pid}/cancel", token=t[operator.id])
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "cancelled"
    for member in (a, b, c):
        assert wallet_of(member.id) == {"currency": "EUR", "balance": 10_000, "held": 0, "available": 10_000}
    assert wallet_of(s.id)["balance"] == 0
    assert ledger_balance(api, t[operator.id], escrow) == 0
    r = api.get("/api/v1/ledger/entries", token=t[operator.id], query={"kind": "pool_refund"})
    assert sorted(-p["amount"] for e in r.get_json() for p in e["postings"] if p["account"] == escrow) == [
        -4_995,
        -3_330,
    ]
    assert_error(api.post(f"/api/v1/pools/{pid}/delivery", token=t[s.id]), 409, "invalid_state")
    assert_ledger_invariants()


def test_delivered_pool_cannot_be_cancelled(api):
    operator = make_member("operator")
    organizer = make_member()
    a = make_member(funds={"EUR": 10_000})
    s = make_member("supplier")
    t = {m.id: token_for(m) for m in (operator, organizer, a, s)}
    pid = create_pool(api, t[organizer.id], min_volume=5)["id"]
    pledge(api, t[a.id], pid, 10, 100)
    bid(api, t[s.id], pid, [(5, 99)], 10)
    api.post(f"/api/v1/pools/{pid}/close", token=t[organizer.id])
    assert api.post(f"/api/v1/pools/{pid}/delivery", token=t[s.id]).status_code == 200
    assert_error(api.post(f"/api/v1/pools/{pid}/cancel", token=t[operator.id]), 409, "invalid_state")
    assert wallet_of(s.id)["balance"] == 990 - _fee(990)


def test_close_delivery_and_cancel_replay_with_an_idempotency_key(api):
    operator = make_member("operator")
    organizer = make_member()
    a = make_member(funds={"EUR": 10_000})
    s = make_member("supplier")
    t = {m.id: token_for(m) for m in (operator, organizer, a, s)}
    pid = create_pool(api, t[organizer.id], min_volume=5)["id"]
    pledge(api, t[a.id], pid, 10, 300)
    bid(api, t[s.id], pid, [(5, 250)], 100)

    close_key = {"Idempotency-Key": "close-once"}
    first = api.post(f"/api/v1/pools/{pid}/close", token=t[organizer.id], headers=close_key)
    again = api.post(f"/api/v1/pools/{pid}/close", token=t[organizer.id], headers=close_key)
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json() and first.get_json()["status"] == "awarded"
    assert wallet_of(a.id) == {"currency": "EUR", "balance": 7_500, "held": 0, "available": 7_500}
    # The same key on another pool's path is a different request.
    other = create_pool(api, t[organizer.id])["id"]
    assert_error(
        api.post(f"/api/v1/pools/{other}/close", token=t[organizer.id], headers=close_key),
        409,
        "idempotency_key_reused",
    )
    assert get_pool(api, t[a.id], other)["status"] == "open"

    pay_key = {"Idempotency-Key": "deliver-once"}
    first = api.post(f"/api/v1/pools/{pid}/delivery", token=t[s.id], headers=pay_key)
    again = api.post(f"/api/v1/pools/{pid}/delivery", token=t[s.id], headers=pay_key)
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json() and first.get_json()["status"] == "delivered"
    assert wallet_of(s.id)["balance"] == 2_500 - _fee(2_500)

    cancel_key = {"Idempotency-Key": "cancel-once"}
    pledge(api, t[a.id], other, 10, 100)
    first = api.post(f"/api/v1/pools/{other}/cancel", token=t[operator.id], headers=cancel_key)
    again = api.post(f"/api/v1/pools/{other}/cancel", token=t[operator.id], headers=cancel_key)
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json() and first.get_json()["status"] == "cancelled"
    assert wallet_of(a.id) == {"currency": "EUR", "balance": 7_500, "held": 0, "available": 7_500}
    assert_ledger_invariants()
