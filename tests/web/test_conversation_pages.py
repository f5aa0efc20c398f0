"""Comments, verified reviews and supplier profiles through the browser pages."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from marketplace.conversation import services as conversation
from marketplace.conversation.models import Comment, Review
from marketplace.pools import services as pools
from tests.helpers import make_member
from tests.web.test_pool_pages import browser, field_error, make_pool, signed_in, text, token, worked_example


def _comments() -> int:
    from marketplace.extensions import db

    return db.session.execute(select(func.count(Comment.id))).scalar_one()


def test_comment_thread_is_escaped_and_in_order(app):
    pool = make_pool(make_member(name="Olga Organizer"))
    author = make_member(name="Carla Commenter")
    client = signed_in(app, author)
    csrf = token(client, f"/pools/{pool.id}")
    page = client.get(f"/pools/{pool.id}")
    html = page.get_data(as_text=True)
    assert '<label for="comment-body">' in html and 'maxlength="2000"' in html
    assert "No comments yet" in text(page)

    first = client.post(f"/pools/{pool.id}/comments", data={"csrf_token": csrf, "body": "Is delivery included?"})
    assert first.status_code == 302 and "#comment-" in first.headers["Location"]
    evil = '<script>alert("x")</script> & <b>bold</b>'
    client.post(f"/pools/{pool.id}/comments", data={"csrf_token": csrf, "body": evil})

    page = browser(app).get(f"/pools/{pool.id}")  # anyone can read the thread
    html = page.get_data(as_text=True)
    assert "<script>alert" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    body = text(page)
    assert body.index("Is delivery included?") < body.index('<script>alert("x")</script>')  # newest last
    assert "Carla Commenter" in body
    assert "Sign in to join the discussion" in body
    assert f'action="/pools/{pool.id}/comments"' not in html


def test_comment_validation_keeps_the_text(app):
    pool = make_pool(make_member())
    client = signed_in(app, make_member())
    csrf = token(client, f"/pools/{pool.id}")
    empty = client.post(f"/pools/{pool.id}/comments", data={"csrf_token": csrf, "body": "   "})
    assert empty.status_code == 422
    assert "Write something first." in field_error(empty.get_data(as_text=True), "comment-body")

    long = "a" * 2001
    too_long = client.post(f"/pools/{pool.id}/comments", data={"csrf_token": csrf, "body": long})
    assert too_long.status_code == 422
    html = too_long.get_data(as_text=True)
    assert "at most 2,000 characters" in field_error(html, "comment-body")
    assert long in html  # what was typed is kept

    nul = client.post(f"/pools/{pool.id}/comments", data={"csrf_token": csrf, "body": "a\x00b"})
    assert nul.status_code == 422 and "NUL" in field_error(nul.get_data(as_text=True), "comment-body")
    assert _comments() == 0

    exactly = client.post(f"/pools/{pool.id}/comments", data={"csrf_token": csrf, "body": "b" * 2000})
    assert exactly.status_code == 302 and _comments() == 1


def test_comment_needs_sign_in_and_a_pool(app):
    pool = make_pool(make_member())
    anonymous = browser(app)
    csrf = token(anonymous, "/login")
    response = anonymous.post(f"/pools/{pool.id}/comments", data={"csrf_token": csrf, "body": "hello"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    client = signed_in(app, make_member())
    missing = client.post("/pools/424242/comments", data={"csrf_token": token(client), "body": "hello"})
    assert missing.status_code == 404
    assert _comments() == 0


def test_comment_rate_limit_shows_a_friendly_message(app, monkeypatch):
    monkeypatch.setitem(app.config, "COMMENT_RATE_LIMIT", "2 per minute")
    pool = make_pool(make_member())
    client = signed_in(app, make_member())
    csrf = token(client, f"/pools/{pool.id}")
    for n in range(2):
        assert client.post(f"/pools/{pool.id}/comments", data={"csrf_token": csrf, "body": f"c{n}"}).status_code == 302
    limited = client.post(f"/pools/{pool.id}/comments", data={"csrf_token": csrf, "body": "third, kept"})
    assert limited.status_code == 429
    html = limited.get_data(as_text=True)
    assert "commenting faster than the marketplace allows" in field_error(html, "comment-body")
    assert "third, kept" in html
    assert _comments() == 2
    # The limit is per member: someone else may still comment.
    other = signed_in(app, make_member())
    assert (
        other.post(f"/pools/{pool.id}/comments", data={"csrf_token": token(other), "body": "me too"}).status_code == 302
    )


def test_review_form_only_for_filled_members_after_delivery(app):
    story = worked_example()
    pool = story["pool"]
    a = signed_in(app, story["a"])
    assert "Post review" not in text(a.get(f"/pools/{pool.id}"))  # open: no review yet
    pools.close_pool(pool.id, story["organizer"].id)
    assert "Post review" not in text(a.get(f"/pools/{pool.id}"))  # awarded, not delivered
    pools.confirm_delivery(pool.id, story["y"].id)

    page = a.get(f"/pools/{pool.id}")
    html = page.get_data(as_text=True)
    assert "Review Yolanda Supplies" in text(page)
    assert re.search(r"<fieldset[^>]*>\s*<legend>Rating", html)
    radios = re.findall(r'<input[^>]*type="radio"[^>]*>', html)
    assert sorted(re.search(r'value="(\d)"', r).group(1) for r in radios) == ["1", "2", "3", "4", "5"]
    assert all('name="rating"' in r for r in radios)
    assert '<label for="review-body">' in html

    d = signed_in(app, story["d"])  # released, not filled
    assert "Post review" not in text(d.get(f"/pools/{pool.id}"))
    organizer = signed_in(app, story["organizer"])
    assert "Post review" not in text(organizer.get(f"/pools/{pool.id}"))
    refused = d.post(
        f"/pools/{pool.id}/reviews", data={"csrf_token": token(d), "rating": "1", "body": "no"}, follow_redirects=True
    )
    assert "Only members whose pledge was filled" in text(refused)

    missing = a.post(f"/pools/{pool.id}/reviews", data={"csrf_token": token(a), "body": "no rating"})
    assert missing.status_code == 422 and "Choose a rating" in text(missing)
    posted = a.post(
        f"/pools/{pool.id}/reviews", data={"csrf_token": token(a), "rating": "4", "body": "Panels arrived <on time>"}
    )
    assert posted.status_code == 302
    review = conversation.pool_reviews(pool.id)[0]
    assert (review.rating, review.body, review.member_id) == (4, "Panels arrived <on time>", story["a"].id)
    page = a.get(f"/pools/{pool.id}")
    assert "Post review" not in text(page) and "Panels arrived <on time>" in text(page)
    assert "Panels arrived &lt;on time&gt;" in page.get_data(as_text=True)

    again = a.post(
        f"/pools/{pool.id}/reviews",
        data={"csrf_token": token(a), "rating": "5", "body": "again"},
        follow_redirects=True,
    )
    assert "You already reviewed this pool." in text(again)

    profile = a.get(f"/suppliers/{story['y'].id}")
    assert profile.status_code == 200
    body = text(profile)
    assert "Yolanda Supplies" in body and "Panels arrived <on time>" in body and "Member A" in body
    assert "4.00 out of 5" in body and "1 review" in body
    assert 'aria-label="Rated 4.00 out of 5 from 1 review"' in profile.get_data(as_text=True)
    assert "★★★★☆" in body
    assert 'id="pools-won">1<' in profile.get_data(as_text=True)
    assert 'id="pools-delivered">1<' in profile.get_data(as_text=True)
    assert "Every review here comes from a verified buyer" in body
    histogram = re.search(r'<table class="data rating-histogram".*?</table>', profile.get_data(as_text=True), re.S)
    assert "<caption>" in histogram.group(0)
    rows = re.findall(r"<tr>.*?</tr>", histogram.group(0).split("<tbody>")[1], re.S)
    assert [re.search(r'<td class="num">(\d+)</td>', r).group(1) for r in rows] == ["0", "1", "0", "0", "0"]
    from marketplace.extensions import db

    assert db.session.execute(select(func.count(Review.id))).scalar_one() == 1


def test_supplier_profile_without_reviews_and_unknown(app):
    supplier = make_member("supplier", name="New Supplier")
    client = signed_in(app, make_member())
    page = client.get(f"/suppliers/{supplier.id}")
    assert page.status_code == 200
    body = text(page)
    assert "No ratings yet" in body and "No reviews yet." in body
    assert 'id="pools-won">0<' in page.get_data(as_text=True)
    assert client.get(f"/suppliers/{supplier.id + 1000}").status_code == 404
    member = make_member()
    assert client.get(f"/suppliers/{member.id}").status_code == 404  # a member is not a supplier
    anonymous = browser(app).get(f"/suppliers/{supplier.id}")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_rate_limited_comment_on_a_missing_pool_is_still_a_friendly_429(app, monkeypatch):
    monkeypatch.setitem(app.config, "COMMENT_RATE_LIMIT", "1 per minute")
    client = signed_in(app, make_member())
    csrf = token(client)
    assert client.post("/pools/31337/comments", data={"csrf_token": csrf, "body": "a"}).status_code == 404
    limited = client.post("/pools/31337/comments", data={"csrf_token": csrf, "body": "b"})
    assert limited.status_code == 429 and "Please slow down" in text(limited)
