"""The notifications page, mark-all-read and the unread count for the nav."""

from __future__ import annotations

import re

from flask import render_template_string

from marketplace.notifications import services as notifications
from marketplace.pools import services as pools
from tests.helpers import make_member
from tests.web.test_pool_pages import browser, signed_in, text, token, worked_example


def test_award_notification_listed_and_mark_all_read(app):
    story = worked_example()
    pool = story["pool"]
    pools.close_pool(pool.id, story["organizer"].id)
    client = signed_in(app, story["a"])

    page = client.get("/notifications")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    body = text(page)
    assert "was awarded at 7.50 EUR per panel: you were charged 375.00 EUR" in body
    assert "1 unread" in body and "Unread" in body
    assert re.search(r'<li class="notification unread">', html)
    assert f'<a href="/pools/{pool.id}">View the pool' in html
    assert "Mark all as read" in body

    done = client.post("/notifications/read", data={"csrf_token": token(client, "/notifications")})
    assert done.status_code == 302 and done.headers["Location"].endswith("/notifications")
    assert notifications.unread_count(story["a"].id) == 0
    page = client.get("/notifications")
    body = text(page)
    assert "Marked 1 notification as read." in body
    assert "was awarded at 7.50 EUR" in body and "1 unread" not in body and "Unread" not in body
    assert 'class="notification unread"' not in page.get_data(as_text=True)
    assert "Mark all as read" not in body

    # The released member hears why, and the winner that it won.
    released = text(signed_in(app, story["d"]).get("/notifications"))
    assert "above your maximum price: your pledge was released and nothing was charged" in released
    assert "You won pool" in text(signed_in(app, story["y"]).get("/notifications"))


def test_newest_first_and_empty_state(app):
    member = make_member()
    client = signed_in(app, member)
    page = client.get("/notifications")
    assert "No notifications yet." in text(page)
    notifications.notify(member.id, "note", "older message", "/pools/1")
    notifications.notify(member.id, "note", "newer message", "https://evil.example/phish")
    from marketplace.extensions import db

    db.session.commit()
    page = client.get("/notifications")
    body = text(page)
    assert body.index("newer message") < body.index("older message")
    assert "evil.example" not in page.get_data(as_text=True)  # only same-site links are linked


def test_unread_count_context_processor(app):
    member = make_member()
    notifications.notify(member.id, "note", "one", "")
    notifications.notify(member.id, "note", "two", "")
    from marketplace.extensions import db

    db.session.commit()
    template = "{{ unread_notifications }}"
    with app.test_request_context("/"):
        assert render_template_string(template) == "0"  # anonymous
    with app.test_request_context("/"):
        from flask_login import login_user

        login_user(member)
        assert render_template_string(template) == "2"
    client = signed_in(app, member)
    assert "2 unread" in text(client.get("/notifications"))


def test_notifications_need_sign_in(app):
    anonymous = browser(app)
    response = anonymous.get("/notifications")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    posted = anonymous.post("/notifications/read", data={"csrf_token": token(anonymous, "/login")})
    assert posted.status_code == 302 and "/login" in posted.headers["Location"]
