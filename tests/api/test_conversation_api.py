"""Conversation API: comment threads, verified reviews, supplier ratings, notifications."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select

from marketplace.clock import now
from marketplace.conversation.models import Comment, Review
from marketplace.extensions import db
from tests.helpers import assert_error, make_member, token_for

COMMENT_KEYS = {"id", "author_id", "body", "created_at"}


def _pool(api, token, min_volume=5) -> int:
    deadline = (now() + timedelta(days=1)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "title": "Heat pumps",
        "description": "",
        "unit": "pump",
        "currency": "EUR",
        "min_volume": min_volume,
        "deadline": deadline,
    }
    r = api.post("/api/v1/pools", body, token=token)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def _comments_count() -> int:
    return db.session.execute(select(func.count(Comment.id))).scalar_one()


def _delivered_pool(api, buyers: list, supplier) -> int:
    """A pool awarded to ``supplier`` and delivered, each buyer's 10 units filled at 1.00."""
    organizer = make_member()
    pid = _pool(api, token_for(organizer), min_volume=10)
    for buyer in buyers:
        r = api.post(f"/api/v1/pools/{pid}/pledges", {"quantity": 10, "max_unit_price": 100}, token=token_for(buyer))
        assert r.status_code == 201, r.get_json()
    ts = token_for(supplier)
    r = api.post(
        f"/api/v1/pools/{pid}/bids", {"tiers": [{"min_volume": 10, "unit_price": 100}], "capacity": 10_000}, token=ts
    )
    assert r.status_code == 201, r.get_json()
    assert api.post(f"/api/v1/pools/{pid}/close", token=token_for(organizer)).get_json()["status"] == "awarded"
    assert api.post(f"/api/v1/pools/{pid}/delivery", token=ts).get_json()["status"] == "delivered"
    return pid


# ---------------------------------------------------------------- comments


def test_comment_thread_is_plain_text_in_order(api):
    organizer = make_member()
    reader = make_member(verified=False)
    supplier = make_member("supplier")
    to, tr, ts = token_for(organizer), token_for(reader), token_for(supplier)
    pid = _pool(api, to)
    bodies = [
        "<script>alert(document.cookie)</script>",
        "  Trim me  ",
        "Ünïcödé ✓ — 日本語 🚀",
        "line one\nline two & \"quotes\" 'single' <b>",
        "x" * 2000,
    ]
    posted = []
    for token, body in zip([to, tr, ts, to, tr], bodies, strict=True):
        r = api.post(f"/api/v1/pools/{pid}/comments", {"body": body}, token=token)
        assert r.status_code == 201, r.get_json()
        data = r.get_json()
        assert set(data) >= COMMENT_KEYS
        assert data["body"] == body.strip()
        assert data["created_at"].endswith("Z")
        posted.append(data)
    assert [p["author_id"] for p in posted] == [organizer.id, reader.id, supplier.id, organizer.id, reader.id]
    raw = api.post(f"/api/v1/pools/{pid}/comments", {"body": "<script>x</script>"}, token=to).get_data(as_text=True)
    assert json.loads(raw)["body"] == "<script>x</script>"

    r = api.get(f"/api/v1/pools/{pid}/comments", token=tr)
    assert r.status_code == 200
    listed = r.get_json()
    assert [c["id"] for c in listed] == [p["id"] for p in posted] + [json.loads(raw)["id"]]
    assert [c["body"] for c in listed[:5]] == [b.strip() for b in bodies]
    assert json.loads(r.headers["X-Pagination"])["total"] == 6
    page = api.get(f"/api/v1/pools/{pid}/comments", token=tr, query={"page": 2, "page_size": 4}).get_json()
    assert [c["id"] for c in page] == [c["id"] for c in listed[4:]]


def test_bad_comments_are_rejected_and_write_nothing(api):
    member = make_member()
    token = token_for(member)
    pid = _pool(api, token)
    path = f"/api/v1/pools/{pid}/comments"
    for body in ["", "   \n\t ", "x" * 2001, None, 42, ["list"], {"a": 1}, True, "nul\x00byte"]:
        assert_error(api.post(path, {"body": body}, token=token), 422, field="body")
    assert_error(api.post(path, {}, token=token), 422, field="body")
    assert_error(api.post(path, {"body": "ok", "author_id": 1}, token=token), 422, field="author_id")
    assert_error(api.post(path, data="{broken", token=token), 400)
    assert_error(api.post(path, {"body": "who am I"}), 401)
    assert_error(api.get(path), 401)
    assert_error(api.post("/api/v1/pools/999999/comments", {"body": "hello"}, token=token), 404)
    assert_error(api.get("/api/v1/pools/999999/comments", token=token), 404)
    assert_error(api.post("/api/v1/loan-requests/999999/comments", {"body": "hello"}, token=token), 404)
    assert_error(api.get("/api/v1/loan-requests/999999/comments", token=token), 404)
    assert _comments_count() == 0


def test_comment_rate_limit_is_429_limit_exceeded(api, app, monkeypatch):
    member = make_member()
    token = token_for(member)
    pid = _pool(api, token)
    monkeypatch.setitem(app.config, "COMMENT_RATE_LIMIT", "2 per minute")
    path = f"/api/v1/pools/{pid}/comments"
    assert api.post(path, {"body": "one"}, token=token).status_code == 201
    assert api.post(path, {"body": "two"}, token=token).status_code == 201
    assert_error(api.post(path, {"body": "three"}, token=token), 429, "limit_exceeded")
    # The limit is per member: someone else can still speak.
    assert api.post(path, {"body": "mine"}, token=token_for(make_member())).status_code == 201
    assert _comments_count() == 3


# ---------------------------------------------------------------- reviews and ratings


def test_reviews_only_from_filled_members_after_delivery(api):
    a, b, c = (make_member(funds={"EUR": 10_000}) for _ in range(3))
    supplier = make_member("supplier", name="Acme Pumps")
    pid = _delivered_pool(api, [a, b, c], supplier)
    path = f"/api/v1/pools/{pid}/reviews"
    ta, tb, tc = token_for(a), token_for(b), token_for(c)

    for bad in [0, 6, -1, 4.5, "5", True, None]:
        assert_error(api.post(path, {"rating": bad, "body": "x"}, token=ta), 422, field="rating")
    assert_error(api.post(path, {"rating": 5, "body": "x" * 4001}, token=ta), 422, field="body")
    assert_error(api.post(path, {"rating": 5, "stars": 5}, token=ta), 422, field="stars")
    assert_error(api.post(path, {"body": "no rating"}, token=ta), 422, field="rating")
    assert_error(api.post("/api/v1/pools/999999/reviews", {"rating": 5}, token=ta), 404)
    assert_error(api.post(path, {"rating": 5}, token=token_for(supplier)), 403)
    assert_error(api.post(path, {"rating": 5}), 401)

    r = api.post(path, {"rating": 5, "body": "  <i>Quiet</i> and warm  "}, token=ta)
    assert r.status_code == 201, r.get_json()
    review = r.get_json()
    assert (review["pool_id"], review["supplier_id"], review["member_id"], review["rating"], review["body"]) == (
        pid,
        supplier.id,
        a.id,
        5,
        "<i>Quiet</i> and warm",
    )
    assert api.post(path, {"rating": 4}, token=tb).status_code == 201
    assert api.post(path, {"rating": 4, "body": ""}, token=tc).status_code == 201
    assert_error(api.post(path, {"rating": 1, "body": "changed my mind"}, token=ta), 409, "already_exists")
    assert db.session.execute(select(func.count(Review.id))).scalar_one() == 3

    profile = api.get(f"/api/v1/suppliers/{supplier.id}", token=ta).get_json()
    assert profile["display_name"] == "Acme Pumps"
    assert (profile["rating_count"], profile["rating_average"]) == (3, "4.33")
    assert profile["histogram"] == {"1": 0, "2": 0, "3": 0, "4": 2, "5": 1}
    assert (profile["pools_won"], profile["pools_delivered"]) == (1, 1)
    assert [rv["rating"] for rv in profile["reviews"]] == [4, 4, 5]
    listed = api.get(path, token=token_for(make_member())).get_json()
    assert [rv["member_id"] for rv in listed] == [a.id, b.id, c.id]


def test_rating_average_rounds_half_up(api):
    a, b = (make_member(funds={"EUR": 10_000}) for _ in range(2))
    supplier = make_member("supplier")
    first = _delivered_pool(api, [a, b], supplier)
    api.post(f"/api/v1/pools/{first}/reviews", {"rating": 5}, token=token_for(a))
    api.post(f"/api/v1/pools/{first}/reviews", {"rating": 2}, token=token_for(b))
    second = _delivered_pool(api, [a, b], supplier)
    api.post(f"/api/v1/pools/{second}/reviews", {"rating": 2}, token=token_for(a))
    api.post(f"/api/v1/pools/{second}/reviews", {"rating": 4}, token=token_for(b))
    third = _delivered_pool(api, [a], supplier)
    api.post(f"/api/v1/pools/{third}/reviews", {"rating": 5}, token=token_for(a))
    third_b = _delivered_pool(api, [b], supplier)
    api.post(f"/api/v1/pools/{third_b}/reviews", {"rating": 4}, token=token_for(b))
    # (5 + 2 + 2 + 4 + 5 + 4) / 6 = 3.666... -> 3.67
    profile = api.get(f"/api/v1/suppliers/{supplier.id}", token=token_for(a)).get_json()
    assert (profile["rating_count"], profile["rating_average"], profile["pools_delivered"]) == (6, "3.67", 4)
    fourth = _delivered_pool(api, [a, b], supplier)
    api.post(f"/api/v1/pools/{fourth}/reviews", {"rating": 3}, token=token_for(a))
    api.post(f"/api/v1/pools/{fourth}/reviews", {"rating": 4}, token=token_for(b))
    # 29 / 8 = 3.625 -> 3.63 (half up, not banker's 3.62)
    profile = api.get(f"/api/v1/suppliers/{supplier.id}", token=token_for(a)).get_json()
    assert (profile["rating_count"], profile["rating_average"]) == (8, "3.63")


# ---------------------------------------------------------------- notifications


def test_notifications_are_private_newest_first_and_paginated(api):
    a, b = (make_member(funds={"EUR": 10_000}) for _ in range(2))
    supplier = make_member("supplier")
    _delivered_pool(api, [a], supplier)
    r = api.get("/api/v1/notifications", token=token_for(a))
    assert r.status_code == 200
    rows = r.get_json()
    assert [n["kind"] for n in rows] == ["pool_delivered", "pool_awarded"]
    assert all(set(n) >= {"id", "kind", "message", "link", "created_at"} for n in rows)
    assert rows[0]["id"] > rows[1]["id"]
    assert "1.00 EUR" in rows[1]["message"]
    assert json.loads(r.headers["X-Pagination"])["total"] == 2
    assert api.get("/api/v1/notifications", token=token_for(b)).get_json() == []
    assert [n["kind"] for n in api.get("/api/v1/notifications", token=token_for(supplier)).get_json()] == [
        "payout",
        "bid_won",
    ]
    one = api.get("/api/v1/notifications", token=token_for(a), query={"page": 2, "page_size": 1}).get_json()
    assert [n["id"] for n in one] == [rows[1]["id"]]
    assert_error(api.get("/api/v1/notifications"), 401)
