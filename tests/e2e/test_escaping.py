"""Journey 3: what members type is shown as text, never run as markup.

The page's Content-Security-Policy would block an inline ``onerror`` on its
own, so this context bypasses CSP: only the template's escaping stands
between the comment and a dialog.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from marketplace.clock import now
from marketplace.extensions import db
from marketplace.pools import services as pools

from .conftest import flash_text, person, sign_in

pytestmark = pytest.mark.e2e

PAYLOAD = "<img src=x onerror=alert(1)>"
NAME = "<b onmouseover=alert(2)>Mallory</b>"


def test_comment_markup_is_shown_as_text(open_page):
    organizer = person(name="Olga Organizer")
    mallory = person(name=NAME)
    pool = pools.create_pool(
        organizer.id,
        title="Bulk oats <i>for</i> the co-op",
        description="",
        unit="kg",
        currency="EUR",
        min_volume=100,
        deadline=now() + timedelta(days=3),
    )
    pool_id = pool.id
    db.session.remove()

    page = open_page(bypass_csp=True)
    fired = []
    page.on("dialog", lambda dialog: fired.append(dialog.message))
    sign_in(page, mallory.email)
    page.goto(f"/pools/{pool_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Bulk oats <i>for</i> the co-op")

    page.get_by_label("Your comment").fill(PAYLOAD)
    with page.expect_navigation():
        page.get_by_role("button", name="Post comment").click()
    assert "Your comment is posted." in flash_text(page)

    comment = page.locator("#discussion .comment")
    expect(comment).to_have_count(1)
    expect(comment.locator(".user-text")).to_have_text(PAYLOAD)
    expect(comment.locator(".comment-meta strong")).to_have_text(NAME)
    expect(page.get_by_text(PAYLOAD, exact=True)).to_be_visible()
    # Nothing the member typed became an element.
    assert page.locator("#discussion img").count() == 0
    assert page.locator("#discussion b, h1 i").count() == 0
    comment.locator(".comment-meta strong").hover()

    # Reload (the comment now comes from the database, not the form) and give any handler a chance.
    page.reload()
    expect(page.locator("#discussion .comment .user-text")).to_have_text(PAYLOAD)
    page.wait_for_timeout(200)
    assert fired == [], f"a dialog fired: {fired}"
    assert page.watch.dialogs == []
    assert not any(url.rstrip("/").endswith("/x") for url in page.watch.requests), page.watch.requests
